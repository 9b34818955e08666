"""minicnn.viz: looking inside a CNN.

- The autograd graph: `graph` (Graphviz DOT source), `plot_graph` (PNG/SVG), `recording` (module scopes, so a
  graph can collapse each module into one box).
- Filters, feature maps, receptive fields: `receptive_field` (Araujo et al. 2019), `activations`, `filter_grid`,
  `filters`, `show_feature_maps`, `top_patches`, `show_top_patches`, `draw_receptive_field`, `show_receptive_field`.
- Attribution: `occlusion` (Zeiler & Fergus 2014), `saliency` and SmoothGrad (Simonyan et al. 2014, Smilkov et
  al. 2017), `grad_cam` (Selvaraju et al. 2017), `overlay` and `show_attributions` for pictures.
"""
from .attribution import grad_cam, occlusion, overlay, saliency, show_attributions
from .autograd_graph import graph, plot_graph, recording
from .features import (TopPatches, activations, draw_receptive_field, filter_grid, filters, show_feature_maps,
                       show_receptive_field, show_top_patches, top_patches)
from .receptive import ReceptiveField, receptive_field

__all__ = ["graph", "plot_graph", "recording", "receptive_field", "ReceptiveField", "activations", "filter_grid",
           "filters", "show_feature_maps", "top_patches", "TopPatches", "show_top_patches", "draw_receptive_field",
           "show_receptive_field", "occlusion", "saliency", "grad_cam", "overlay", "show_attributions"]
