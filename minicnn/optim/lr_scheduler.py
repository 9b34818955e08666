"""Learning-rate schedules, stepped once per epoch (PyTorch's semantics).

StepLR: lr = base * gamma^(epoch // step_size).  MultiStepLR: lr = base * gamma^(milestones passed).
CosineAnnealingLR (Loshchilov and Hutter 2017): lr = eta_min + (base - eta_min) (1 + cos(pi epoch / T_max)) / 2.
ReduceLROnPlateau: multiply by `factor` after `patience` epochs without improvement of a metric.

Schedulers compose as in PyTorch: a scheduler that finds the rate away from its own schedule's value (moved by
another scheduler on the same optimizer, or by the user) applies, from then on, its own change to the current rate
(StepLR multiplies it by gamma at each step_size, cosine annealing scales its distance to eta_min by the ratio of
consecutive cosine terms) instead of overwriting it with its closed form. Until then the two agree, and the closed
form keeps a lone schedule exact.
"""
import bisect
import math
import numbers

from .optimizer import Optimizer


def _check_optimizer(name, optimizer):
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"{name}: expected an optimizer, got {type(optimizer).__name__}")


def _check_number(name, what, value, low=-math.inf, positive_int=False):
    ok = isinstance(value, numbers.Integral if positive_int else numbers.Real) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or value < low or (positive_int and value < 1):
        kind = "a positive int" if positive_int else f"a finite number >= {low}"
        raise ValueError(f"{name}: {what} must be {kind}, got {value!r}")


class LRScheduler:
    def __init__(self, optimizer):
        _check_optimizer(type(self).__name__, optimizer)
        self.optimizer = optimizer
        self.base_lrs = [g.setdefault("initial_lr", g["lr"]) for g in optimizer.param_groups]
        self.last_epoch = 0
        self._chained = False  # whether the rate was ever found away from this schedule's own value

    def lr_at(self, base, epoch):
        """The closed form: the rate at `epoch` when this scheduler alone sets it."""
        raise NotImplementedError

    def chained_lr(self, lr, base, epoch):
        """The rate at `epoch` from the current rate `lr` (the rate at epoch - 1, whoever set it)."""
        raise NotImplementedError

    def step(self):
        self.last_epoch += 1
        groups = self.optimizer.param_groups
        self._chained = self._chained or any(g["lr"] != self.lr_at(base, self.last_epoch - 1)
                                             for g, base in zip(groups, self.base_lrs))
        for g, base in zip(groups, self.base_lrs):
            g["lr"] = self.chained_lr(g["lr"], base, self.last_epoch) if self._chained else \
                self.lr_at(base, self.last_epoch)

    def get_last_lr(self):
        return [g["lr"] for g in self.optimizer.param_groups]

    def reset_lr(self):
        """Set every group's rate to this schedule's closed form at last_epoch, after its settings changed (a run
        resumed with a larger T_max); the schedule then owns the rate again."""
        for g, base in zip(self.optimizer.param_groups, self.base_lrs):
            g["lr"] = self.lr_at(base, self.last_epoch)
        self._chained = False

    def state_dict(self):
        return {k: v for k, v in self.__dict__.items() if k != "optimizer"}

    def load_state_dict(self, state):
        self.__dict__.update(state)


class StepLR(LRScheduler):
    def __init__(self, optimizer, step_size, gamma=0.1):
        _check_number("StepLR", "step_size", step_size, positive_int=True)
        _check_number("StepLR", "gamma", gamma, low=0)
        self.step_size, self.gamma = step_size, gamma
        super().__init__(optimizer)

    def lr_at(self, base, epoch):
        return base * self.gamma ** (epoch // self.step_size)

    def chained_lr(self, lr, base, epoch):
        return lr * self.gamma if epoch % self.step_size == 0 else lr


class MultiStepLR(LRScheduler):
    def __init__(self, optimizer, milestones, gamma=0.1):
        milestones = list(milestones) if isinstance(milestones, (list, tuple, set)) else None
        if milestones is None or not all(isinstance(m, numbers.Integral) and not isinstance(m, bool)
                                         for m in milestones):
            raise ValueError("MultiStepLR: milestones must be a list of ints")
        _check_number("MultiStepLR", "gamma", gamma, low=0)
        self.milestones, self.gamma = sorted(milestones), gamma
        super().__init__(optimizer)
        if 0 in self.milestones:  # epoch 0 is the start, as in PyTorch: a milestone there decays at once
            for g in optimizer.param_groups:
                g["lr"] = self.chained_lr(g["lr"], None, 0)

    def lr_at(self, base, epoch):
        """base * gamma^(milestones in 0..epoch; negative ones are never reached)."""
        passed = bisect.bisect_right(self.milestones, epoch) - bisect.bisect_left(self.milestones, 0)
        return base * self.gamma ** passed

    def chained_lr(self, lr, base, epoch):
        return lr * self.gamma ** self.milestones.count(epoch)


class CosineAnnealingLR(LRScheduler):
    def __init__(self, optimizer, T_max, eta_min=0.0):
        _check_number("CosineAnnealingLR", "T_max", T_max, positive_int=True)
        _check_number("CosineAnnealingLR", "eta_min", eta_min, low=0)
        self.T_max, self.eta_min = T_max, eta_min
        super().__init__(optimizer)

    def lr_at(self, base, epoch):
        return self.eta_min + (base - self.eta_min) * (1 + math.cos(math.pi * epoch / self.T_max)) / 2

    def chained_lr(self, lr, base, epoch):
        t, low = self.T_max, self.eta_min
        if (epoch - 1 - t) % (2 * t) == 0:  # the previous term was 0 (at the minimum): step back up by the increment
            return lr + (base - low) * (1 - math.cos(math.pi / t)) / 2
        return low + (lr - low) * (1 + math.cos(math.pi * epoch / t)) / (1 + math.cos(math.pi * (epoch - 1) / t))


class ReduceLROnPlateau:
    def __init__(self, optimizer, mode="min", factor=0.1, patience=10, threshold=1e-4, threshold_mode="rel",
                 cooldown=0, min_lr=0.0, eps=1e-8):
        _check_optimizer("ReduceLROnPlateau", optimizer)
        _check_number("ReduceLROnPlateau", "factor", factor, low=0)
        if factor >= 1.0:
            raise ValueError(f"ReduceLROnPlateau: factor must be < 1, got {factor}")
        if mode not in ("min", "max") or threshold_mode not in ("rel", "abs"):
            raise ValueError(f"ReduceLROnPlateau: invalid mode {mode!r} or threshold_mode {threshold_mode!r}")
        for what, value in (("patience", patience), ("cooldown", cooldown)):
            if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 0:
                raise ValueError(f"ReduceLROnPlateau: {what} must be an int >= 0, got {value!r}")
        for what, value in (("threshold", threshold), ("min_lr", min_lr), ("eps", eps)):
            _check_number("ReduceLROnPlateau", what, value, low=0)
        self.optimizer = optimizer
        self.mode, self.factor, self.patience = mode, factor, patience
        self.threshold, self.threshold_mode, self.cooldown = threshold, threshold_mode, cooldown
        self.min_lr, self.eps = min_lr, eps
        self.best = math.inf if mode == "min" else -math.inf
        self.num_bad_epochs = self.cooldown_counter = 0
        self.last_epoch = 0

    def _better(self, a):
        if self.mode == "min":
            ref = self.best * (1 - self.threshold) if self.threshold_mode == "rel" else self.best - self.threshold
            return a < ref
        ref = self.best * (1 + self.threshold) if self.threshold_mode == "rel" else self.best + self.threshold
        return a > ref

    def step(self, metric):
        metric = float(metric)
        self.last_epoch += 1
        if self._better(metric):
            self.best, self.num_bad_epochs = metric, 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            for g in self.optimizer.param_groups:
                new = max(g["lr"] * self.factor, self.min_lr)
                if g["lr"] - new > self.eps:
                    g["lr"] = new
            self.cooldown_counter, self.num_bad_epochs = self.cooldown, 0

    def get_last_lr(self):
        return [g["lr"] for g in self.optimizer.param_groups]

    def state_dict(self):
        return {k: v for k, v in self.__dict__.items() if k != "optimizer"}

    def load_state_dict(self, state):
        self.__dict__.update(state)
