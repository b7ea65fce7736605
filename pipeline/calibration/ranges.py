"""Allowed ranges of the estimators' numeric parameters, declared once.

A parameter is checked in two places: the estimator's ``fit`` (scikit-learn's convention, for a
caller who builds the estimator in Python) and the config schema, which refuses a bad
``calibrator.degree`` in one line when a run is composed, before a table is read. Both read the
range from this table, so the two cannot disagree: the estimators call :meth:`ParamRange.check`,
and :mod:`pipeline.config.fit` declares its fields with ``setting(default, **DEGREE.bounds())``.
The dependency points the allowed way: the config imports the estimators' table; the estimators
never see the config.

Standard library only: the config is imported by every command, which must not pay for
scikit-learn.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any

__all__ = ["CV_FOLDS", "DEGREE", "SIGMOID_C", "ParamRange"]


@dataclass(frozen=True)
class ParamRange:
    """The allowed values of one numeric parameter, shared by an estimator and the config.

    Bounds left at ``None`` do not apply. The config turns :meth:`bounds` into its own range
    (same bounds, same explanation, so its one-line error stays as it was), and the estimator
    calls :meth:`check` in ``fit``.

    Parameters
    ----------
    ge, gt, le, lt : float or None, default=None
        Lower bound (inclusive, exclusive) and upper bound (inclusive, exclusive).
    integer : bool, default=False
        Whether only integers are allowed; ``bool`` is refused even though Python counts it as
        an ``int``, because ``degree=True`` is a mistake, never a degree.
    why : str, default=""
        What the range protects, appended to the config's error message.

    Examples
    --------
    >>> ParamRange(ge=1, le=10, integer=True).describe()
    '>= 1 and <= 10'
    >>> ParamRange(gt=0).allows(0.0)
    False
    """

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    integer: bool = False
    why: str = ""

    def allows(self, value: Any) -> bool:
        """Tell whether ``value`` lies in the range (and is an integer where one is required).

        Parameters
        ----------
        value : object
            The candidate value; anything that is not a real number (a string, ``None``, NaN)
            is refused rather than raising ``TypeError`` in the comparison.

        Returns
        -------
        bool
            True when every bound holds.
        """
        kind = numbers.Integral if self.integer else numbers.Real
        if isinstance(value, bool) or not isinstance(value, kind):
            return False
        if value != value:  # NaN, of any float type (math.isnan would overflow on a huge int)
            return False
        return (
            (self.ge is None or value >= self.ge)
            and (self.gt is None or value > self.gt)
            and (self.le is None or value <= self.le)
            and (self.lt is None or value < self.lt)
        )

    def describe(self) -> str:
        """Phrase the bounds as the error messages show them.

        Returns
        -------
        str
            For example ``">= 1 and <= 10"``; ``"any value"`` without bounds. The config's
            ranges are this class too (:func:`pipeline.config.settings.setting`), so the config
            and the estimator name a range alike.
        """
        parts = [
            f"{op} {bound:g}"
            for op, bound in ((">=", self.ge), (">", self.gt), ("<=", self.le), ("<", self.lt))
            if bound is not None
        ]
        return " and ".join(parts) if parts else "any value"

    @property
    def bounded(self) -> bool:
        """Whether any bound applies (a config field without one says so explicitly)."""
        return any(b is not None for b in (self.ge, self.gt, self.le, self.lt))

    def check(self, name: str, value: Any) -> None:
        """Refuse a parameter value outside the range, naming the parameter.

        Parameters
        ----------
        name : str
            The parameter's name as the estimator's caller spells it (``"degree"``).
        value : object
            The value to check.

        Raises
        ------
        ValueError
            When :meth:`allows` is False, e.g. ``degree must be an integer >= 1 and <= 10,
            got 0``.
        """
        if not self.allows(value):
            kind = "an integer " if self.integer else ""
            raise ValueError(f"{name} must be {kind}{self.describe()}, got {value!r}")

    def bounds(self) -> dict[str, Any]:
        """Give the keyword arguments the config's ``setting()`` takes for this range.

        Returns
        -------
        dict
            ``ge``, ``gt``, ``le``, ``lt`` and ``why``; the integer requirement is the config
            field's type annotation instead.
        """
        return {"ge": self.ge, "gt": self.gt, "le": self.le, "lt": self.lt, "why": self.why}


#: polynomial degree of :class:`~pipeline.calibration.calibrators.PolynomialCalibrator` (config
#: ``calibrator.degree``). Capped at 10 because the monotonicity guarantee is exact only in exact
#: arithmetic: the curve is evaluated in the power basis on [0, 1], whose coefficients grow with
#: the degree (~3e2 at 10, ~3e6 at 20 on noisy data) and cancel: fitted curves step down between
#: neighbouring scores by up to 5e-13 at degree 15, 1e-9 at 20, 7e-5 at 30 (none at 10). A
#: calibration curve needs nowhere near 10 turns.
DEGREE = ParamRange(ge=1, le=10, integer=True, why="the polynomial degree")
#: inverse L2 strength on the sigmoid's slope (``SigmoidCalibrator.C``, config ``calibrator.sigmoid_C``)
SIGMOID_C = ParamRange(gt=0, why="inverse regularisation strength")
#: folds of a grouped cross-validation (``AutoCalibrator.n_splits``, ``NonNegativeFusion.auto_splits``,
#: :func:`~pipeline.calibration.calibrators.grouped_splits`; config ``calibrator.auto_splits``,
#: ``fusion.auto_splits``, ``evaluate.n_splits``): one fold holds nothing out
CV_FOLDS = ParamRange(ge=2, integer=True, why="GroupKFold by query needs at least 2 folds")
