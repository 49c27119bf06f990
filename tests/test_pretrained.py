"""``hvd_magtag.pretrained``: the import CLI, the resolver every tool calls, its errors, and the analysis on an
imported model (the released musicnn wheel is a test dependency, installed by ``make install``)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from musicnn_fixtures import clip_names, clip_path, summary

from hvd_magtag.pretrained import MUSICNN_INSTALL, lookup, resolve_model
from hvd_magtag.pretrained.__main__ import main as pretrained_main


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A private pretrained cache (HVD_MAGTAG_CACHE) for this module, with MTT_musicnn imported on first use."""
    root = tmp_path_factory.mktemp("cache")
    mp = pytest.MonkeyPatch()
    mp.setenv("HVD_MAGTAG_CACHE", str(root))
    yield root
    mp.undo()


@pytest.fixture(scope="module")
def first_use(cache):
    """``hvd_magtag.top_tags(..., model="MTT_musicnn")`` with an empty cache: imports, then tags."""
    import hvd_magtag

    clip = clip_names()[0]
    top = hvd_magtag.top_tags(str(clip_path(clip)), model="MTT_musicnn", top_k=5)
    return clip, top, cache / "pretrained" / "MTT_musicnn"


def test_names_are_looked_up_with_or_without_the_source():
    assert lookup("MTT_musicnn").architecture == "musicnn"
    assert lookup("musicnn:MSD_vgg").architecture == "vgg_musicnn"
    assert lookup("other:MTT_musicnn") is None and lookup("runs/x") is None


def test_first_use_imports_into_the_cache_and_tags(first_use):
    clip, top, run_dir = first_use
    assert (run_dir / "run.json").is_file() and (run_dir / "export" / "saved_model.pb").is_file()
    # the clip-level top 5 averages all four windows (the zero-padded tail too), musicnn's the three full ones
    reference = summary()["clips"][clip]["models"]["MTT_musicnn"]["top5"]
    ours = [tag for tag, _ in top]
    assert ours[0] == reference[0] and set(ours[:3]) == set(reference[:3])
    assert resolve_model("MTT_musicnn") == run_dir == resolve_model("musicnn:MTT_musicnn")


def test_an_existing_path_wins_over_a_name(tmp_path, monkeypatch, cache):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "MTT_musicnn").mkdir()
    assert resolve_model("MTT_musicnn") == tmp_path / "MTT_musicnn"
    assert (
        resolve_model("not_a_model") == tmp_path / "not_a_model"
    )  # unknown: returned for the caller to report


def test_tag_cli_takes_the_name(first_use, cache):
    out = subprocess.run(
        [sys.executable, "-m", "hvd_magtag.tag", str(clip_path(clip_names()[1])), "--model", "MTT_musicnn",
         "--format", "json", "--top-k", "3"],
        capture_output=True, text=True, timeout=600, env={**__import__("os").environ, "HVD_MAGTAG_CACHE": str(cache)},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["model"] == str(first_use[2]) and len(doc["files"][0]["top"]) == 3


def test_export_takes_the_name(first_use, tmp_path):
    from hvd_magtag.export import export_run

    out = export_run("MTT_musicnn", out=tmp_path / "exported")
    assert (out / "saved_model.pb").is_file()


def test_import_cli_writes_a_run_directory(tmp_path, capsys):
    assert pretrained_main(["import", "musicnn:MTT_vgg", "--out", str(tmp_path / "vgg"), "--no-export"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "vgg")
    info = json.loads((tmp_path / "vgg" / "run.json").read_text())
    assert info["model"] == "vgg_musicnn" and info["pretrained"]["licence"] == "ISC"
    # a second import keeps it; another model into the same folder is refused
    assert pretrained_main(["import", "MTT_vgg", "--out", str(tmp_path / "vgg"), "--no-export"]) == 0
    assert pretrained_main(["import", "MTT_musicnn", "--out", str(tmp_path / "vgg"), "--no-export"]) == 2
    assert "holds another run" in capsys.readouterr().err


def test_unknown_name_is_one_line_with_the_choices(capsys):
    assert pretrained_main(["import", "musicnn:MTT_resnet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "MTT_resnet" in err and "musicnn:MTT_vgg" in err


def test_missing_musicnn_names_the_install_command(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "musicnn", None)  # importlib.util.find_spec("musicnn") -> None
    assert pretrained_main(["import", "MTT_musicnn", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and MUSICNN_INSTALL in err


def test_list_shows_the_four_models(capsys):
    assert pretrained_main(["list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in ("MTT_musicnn", "MTT_vgg", "MSD_musicnn", "MSD_vgg"))


def test_featuremaps_and_filters_run_on_an_imported_model(first_use, tmp_path):
    """The analysis opens a network trained on real music: feature maps of a real clip (the 2-D timbral and
    temporal convs and the 1-D mid-end) and filter responses, by the pretrained name."""
    from hvd_magtag.analysis.featuremaps import run_featuremaps
    from hvd_magtag.analysis.filters import run_filters

    clip = str(clip_path(clip_names()[2]))
    maps = run_featuremaps(["MTT_musicnn"], clip, out=tmp_path / "maps", max_channels=2, duration_seconds=3.0)
    assert any(maps.rglob("*.wav")) and any(maps.rglob("*.html"))
    filters = run_filters("MTT_musicnn", n_clips=1, out=tmp_path / "filters", clip_args=[clip], seconds=3.0)
    assert any(filters.rglob("*.npz"))
