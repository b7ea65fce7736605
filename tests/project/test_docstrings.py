"""The public estimator and inference API has numpydoc docstrings that match the signatures.

What is validated: every public class and function of :data:`MODULES` -- the names in the
module's ``__all__`` plus every public name *defined* in the module, so neither a name missing
from ``__all__`` nor a new function escapes -- and every public method of those classes (and
``__call__``) that is defined in this package, inherited ones included (``predict`` of the
calibrators lives on their private base class). Methods inherited from scikit-learn
(``get_params``, ``set_params``, ``score``, ``fit_transform``) carry scikit-learn's docstrings and
are not ours to check. An object reached twice (:mod:`pipeline.inference` re-exports the loader)
is validated once, under its public-face name. Constants are documented by ``#:`` comments,
which numpydoc cannot see, and are skipped.

The error codes enforced (:data:`ENFORCED`), from numpydoc's validator:

* GL01-GL03, GL05-GL10: layout (where the summary starts and the quotes close, no double blank
  lines or tabs, known sections in numpydoc's order, directives with two colons);
* GL08: the object has no docstring;
* SS01-SS06: a one-line summary, capitalised, ending in a period, no leading whitespace,
  infinitive verb for functions and methods ("Fit", not "Fits");
* PR01: a parameter of the signature is not documented (for a class: of ``__init__``);
* PR02: a documented parameter does not exist; PR03: documented in another order;
* PR04-PR10: every parameter has a type and a capitalised description ending in a period;
* RT01: something is returned but there is no Returns section; RT03-RT05: each returned value
  has a capitalised description ending in a period;
* YD01: a generator has no Yields section.

Not enforced: ES01 (an extended summary; a one-line docstring is enough for ``transform``),
RT02 (a single *named* return such as ``self : object`` is clearer than a bare type), SA01-SA04
(See Also) and EX01 (examples are given where they are cheap, not everywhere).
"""

from __future__ import annotations

import importlib
import inspect

import pytest
from numpydoc.validate import validate

#: the modules whose public API is documented for users: the estimators and the inference path
MODULES = (
    "pipeline.calibration.calibrators",
    "pipeline.calibration.fusion",
    "pipeline.calibration.fusion_scale",
    "pipeline.calibration.ranges",
    "pipeline.inference",  # before runtime.loader: its names are the ones users import
    "pipeline.runtime.loader",
    "pipeline.runtime.spec",
)

ENFORCED = frozenset(
    ["GL01", "GL02", "GL03", "GL05", "GL06", "GL07", "GL08", "GL09", "GL10"]
    + [f"SS0{i}" for i in range(1, 7)]
    + [f"PR{i:02d}" for i in range(1, 11)]
    + ["RT01", "RT03", "RT04", "RT05", "YD01"]
)


def _ours(obj) -> bool:
    return (getattr(obj, "__module__", None) or "").startswith("pipeline.")


def _public_names(module) -> list[str]:
    defined = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and getattr(value, "__module__", None) == module.__name__
    }
    return sorted(set(getattr(module, "__all__", ())) | defined)


def public_api() -> list[tuple[str, object]]:
    """(dotted name, object) of everything validated, each object once."""
    seen: set[int] = set()
    out: list[tuple[str, object]] = []

    def add(name: str, obj: object) -> None:
        if id(obj) not in seen:
            seen.add(id(obj))
            out.append((name, obj))

    for module_name in MODULES:
        module = importlib.import_module(module_name)
        for name in _public_names(module):
            obj = getattr(module, name)
            if not (inspect.isclass(obj) or inspect.isfunction(obj)):
                continue
            add(f"{module_name}.{name}", obj)
            if not inspect.isclass(obj):
                continue
            for attr in sorted(dir(obj)):
                if attr.startswith("_") and attr != "__call__":
                    continue
                member = inspect.getattr_static(obj, attr)
                if isinstance(member, (staticmethod, classmethod)):
                    member = member.__func__
                target = member.fget if isinstance(member, property) else member
                if (inspect.isfunction(target) or isinstance(member, property)) and _ours(target):
                    add(f"{module_name}.{name}.{attr}", target)
    return out


API = public_api()


def enforced_errors(name: str) -> list[str]:
    result = validate(name)
    where = f"{result['file']}:{result['file_line']}"
    return [f"{code} {message} ({where})" for code, message in result["errors"] if code in ENFORCED]


@pytest.mark.parametrize("name", [name for name, _ in API])
def test_public_docstring_is_valid_numpydoc(name):
    errors = enforced_errors(name)
    assert not errors, f"{name}:\n  " + "\n  ".join(errors)


def test_the_api_is_enumerated_not_empty():
    from pipeline.calibration.calibrators import PolynomialCalibrator

    names = {name for name, _ in API}
    # the private base's predict, validated once (under the first calibrator that inherits it)
    assert any(obj is PolynomialCalibrator.predict for _, obj in API)
    # spot checks that the enumeration reaches each kind of object: an estimator, a function
    # outside __all__, a method, the inference face and its __call__
    for expected in (
        "pipeline.calibration.calibrators.PolynomialCalibrator",
        "pipeline.calibration.calibrators.grouped_splits",
        "pipeline.calibration.fusion.ScoreCalibrationModel.fit",
        "pipeline.inference.load_calibrator",
        "pipeline.inference.LoadedCalibrator.__call__",
        "pipeline.runtime.spec.compile_spec",
    ):
        assert expected in names
    assert not any(n.endswith((".get_params", ".set_params", ".score")) for n in names)  # scikit-learn's
    assert len(API) > 50


def _documented_but_incomplete(x, y):
    """Add two numbers.

    Parameters
    ----------
    x : float
        The first.

    Returns
    -------
    float
        The sum.
    """
    return x + y


def test_the_validator_catches_an_undocumented_parameter():
    codes = {code for code, _ in validate(f"{__name__}._documented_but_incomplete")["errors"]}
    assert "PR01" in codes and "PR01" in ENFORCED
