"""minicnn.viz: looking inside a CNN.

- The autograd graph: `graph` (Graphviz DOT source), `plot_graph` (PNG/SVG), `recording` (module scopes, so a
  graph can collapse each module into one box).
- Attribution: `occlusion` (Zeiler & Fergus 2014), `saliency` and SmoothGrad (Simonyan et al. 2014, Smilkov et
  al. 2017), `grad_cam` (Selvaraju et al. 2017), `overlay` and `show_attributions` for pictures.
"""
from .attribution import grad_cam, occlusion, overlay, saliency, show_attributions
from .autograd_graph import graph, plot_graph, recording

__all__ = ["graph", "plot_graph", "recording", "occlusion", "saliency", "grad_cam", "overlay", "show_attributions"]
