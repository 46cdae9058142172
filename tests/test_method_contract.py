"""Issue 11.3–11.5: the method contract. The registry names each method (no second `name =`),
every method declares its settings (the base class checks them: one line naming the key), and
evaluation and figures get CAMs and notes from the method, never by probing its model."""

from __future__ import annotations

import inspect

import pytest
import torch
from _support import copy_repo, run_cli

from salience.errors import ConfigError
from salience.methods.base import METHODS, build_method, import_all, method_class
from salience.models.base import build_backbone

import_all()
#: a value of the wrong kind for each kind of setting
WRONG_KIND = {
    "number": "x",
    "integer": 1.5,
    "bool": "yes",
    "string": 3,
    "choice": "nope",
    "list": 3,
}


@pytest.mark.parametrize("name", METHODS.names())
def test_the_registry_sets_the_name(name):
    cls = METHODS.get(name)
    assert cls.name == name
    assert "\n    name = " not in inspect.getsource(cls)


@pytest.mark.parametrize(
    "name, key",
    [(m, k) for m in METHODS.names() for k in method_class(m).settings],
)
def test_every_declared_setting_is_checked_by_the_base_class(name, key):
    setting = method_class(name).settings[key]
    assert method_class(name).defaults[key] == setting.default
    with pytest.raises(ConfigError) as err:
        build_method(name, {key: WRONG_KIND[setting.kind]})
    msg = str(err.value)
    assert msg.startswith(f"methods.{name}.{key}: must be {setting.describe()}, got ")
    assert "\n" not in msg


def test_cross_field_rules_nulls_and_open_ranges():
    with pytest.raises(ConfigError, match=r"^methods\.gazegnn\.channels: must be multiples of 4"):
        build_method("gazegnn", {"channels": [6, 8, 12, 16]})
    with pytest.raises(ConfigError, match=r"^methods\.boyd_blur\.levels: must be non-empty"):
        build_method("boyd_blur", {"levels": [], "include_original": False})
    assert build_method("mentor", {"pretrain_epochs": None}).params["pretrain_epochs"] is None
    with pytest.raises(
        ConfigError, match=r"^methods\.gazegnn\.dropout: must be a number in \[0, 1\), got 1$"
    ):
        build_method("gazegnn", {"dropout": 1})


def _batch(n: int = 4) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {"image": torch.randn(n, 3, 32, 32, generator=g), "label": torch.tensor([0, 1, 1, 0])}


@pytest.mark.parametrize("name", ["cyborg", "contrast", "ggcam", "unet_gaze", "sage"])
def test_cams_are_the_true_and_false_class_maps_of_one_pass(name):
    torch.manual_seed(0)
    method = build_method(name)
    model = method.build_model(build_backbone("smallcnn", "none")).eval()
    batch = _batch()
    with torch.no_grad():
        logits, cams = method.forward_eval(model, batch)
        out = model.forward_all(batch["image"])
        every = model.cams(out)
    t, f = cams
    rows = torch.arange(4)
    torch.testing.assert_close(logits, out.logits)
    torch.testing.assert_close(t, every[rows, batch["label"]])
    torch.testing.assert_close(f, every[rows, 1 - batch["label"]])
    assert t.shape == (4, *every.shape[-2:])
    assert method.eval_notes() == {}


def test_a_method_without_a_cam_head_gives_none_and_its_notes():
    method = build_method("gazegnn", {"channels": [8, 8, 8, 8], "blocks": [1, 1, 1, 1], "k": 2})
    model = method.build_own_model("none").eval()
    batch = {**_batch(), "map": torch.rand(4, 32, 32), "has_map": torch.ones(4, dtype=torch.bool)}
    assert method.cams(model, batch) is None
    with torch.no_grad():
        logits, cams = method.forward_eval(model, batch)
    assert cams is None and logits.shape == (4, 2)
    assert method.eval_notes() == {"test_maps": "per batch"}


USER_METHOD = '''"""A user's method file."""
from salience.methods.base import METHODS, Method


@METHODS.register({name!r})
class Mine(Method):
{body}
'''


@pytest.mark.parametrize(
    "name, body, line",
    [
        (
            "xent",
            '    label = "Mine"',
            "error: method 'xent' is registered twice: by salience.methods.mine.Mine and by "
            "salience.methods.xent.Xent; give one of them another name",
        ),
        (
            "mine",
            "    pass",
            "error: method 'mine' (salience.methods.mine.Mine) has no label; "
            'set label = "..." in the class',
        ),
    ],
    ids=["name-registered-twice", "no-label"],
)
def test_a_bad_method_file_is_one_line(tmp_path, name, body, line):
    """A user's method file reusing a shipped name (was a 33-line ValueError traceback, exit 1) or
    lacking a `label`: one line naming the name and both classes' modules, exit 2, nothing written."""
    root = copy_repo(tmp_path / "repo")
    (root / "src/salience/methods/mine.py").write_text(USER_METHOD.format(name=name, body=body))
    catalogue = root / "src/salience/methods/catalogue.json"
    before = catalogue.read_bytes()
    proc = run_cli(
        ["methods", "--write-catalogue"],
        check=False,
        cwd=root,
        env={"PYTHONPATH": str(root / "src")},
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [line]
    assert f"`` {line} ``" in (root / "docs/robustness.md").read_text()  # quoted verbatim
    assert catalogue.read_bytes() == before
