"""The microscope's site in real Chromium from file://, every network request refused: the index
lists the layers and loads no layer's data, a deep link opens its unit with the crops of
`dataset_examples`' top-k (loaded, in order, with their file names and values), the units
sort and filter, and nothing but the site's own files is requested."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from conftest import resnet18_64px
from test_microscope import K, layer_data, write_photos

from featviz_widgets import FeatureVisualizer, build_microscope

pytestmark = pytest.mark.slow
LAYERS = ["layer1.0", "layer2"]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    photos = tmp_path_factory.mktemp("photos")
    write_photos(photos)
    out = tmp_path_factory.mktemp("site") / "my microscope"  # a space in the file:// URL
    with pytest.warns(UserWarning, match="skipped"):
        index = build_microscope(
            resnet18_64px(),
            photos,
            out,
            layers=LAYERS,
            top_k=K,
            device="cpu",
            looks_for=["layer1.0"],
            looks_for_size=32,
            looks_for_steps=2,
            progress=False,
        )
        viz = FeatureVisualizer(resnet18_64px(), device="cpu")
        examples = viz.dataset_examples(photos, LAYERS, k=K, progress=False)
    return index, examples, photos


def open_offline(page, url: str) -> list[str]:
    """Refuse every http(s) request (routing does not see a file:// page's own requests, so
    they are also recorded) and open `url`; returns the list of requested URLs, growing."""
    requested: list[str] = []
    page.route(re.compile(r"^https?://"), lambda route: route.abort())
    page.on("request", lambda request: requested.append(request.url))
    page.goto(url)
    return requested


def test_index_lists_the_layers_and_loads_no_layer(page, built):
    index, _, _ = built
    requested = open_offline(page, index.as_uri())
    page.wait_for_selector("#layers tbody tr")
    rows = page.eval_on_selector_all("#layers tbody tr", "rows => rows.map(r => r.dataset.layer)")
    assert rows == LAYERS
    [skipped] = page.eval_on_selector_all("#skipped li", "items => items.map(i => i.innerText)")
    assert skipped.startswith("broken.jpg: ") and "not a readable image" in skipped
    assert page.title() == "Microscope: ResNet"
    assert not re.search(r"\b(null|undefined|NaN)\b", page.inner_text("#app"))
    loaded = [url.rsplit("/", 2)[-2:] for url in requested]
    assert ["data", "manifest.js"] in loaded
    assert not [url for url in requested if "/data/layer" in url]  # on demand only
    assert not [url for url in requested if url.startswith(("http:", "https:"))]
    page.click('#layers a[href="#layer2"]')
    page.wait_for_selector("#units tbody tr")
    assert page.url.endswith("#layer2")
    assert [url for url in requested if url.endswith("/data/layer2.js")]


@pytest.mark.parametrize("layer, unit", [("layer2", 7), ("layer1.0", 63)])
def test_a_deep_link_opens_its_unit_with_dataset_examples_top_k(page, built, layer, unit):
    index, examples, photos = built
    requested = open_offline(page, f"{index.as_uri()}#{layer}/{unit}")
    page.wait_for_selector("#crops figure.crop")
    page.wait_for_function(
        "() => [...document.querySelectorAll('#crops img')].every(i => i.complete)"
    )
    crops = page.eval_on_selector_all(
        "#crops figure.crop",
        """figures => figures.map(f => ({
            image: Number(f.dataset.image),
            width: f.querySelector('img').naturalWidth,
            name: f.querySelector('.name').textContent,
            value: Number(f.querySelector('.value').textContent),
        }))""",
    )
    top = examples.top(layer, unit)
    assert [c["image"] for c in crops] == [index for index, _, _ in top]
    assert all(c["width"] > 0 for c in crops)
    assert [photos / c["name"] for c in crops] == [Path(examples.sources[i]) for i, _, _ in top]
    np.testing.assert_allclose([c["value"] for c in crops], [s for _, s, _ in top], rtol=1e-3)
    mean = float(page.inner_text("[data-stat=mean]"))
    assert mean == pytest.approx(examples.mean(layer, unit), rel=1e-3)
    assert page.locator("svg.histogram rect").count() >= 1
    data = layer_data(index.parent, layer)
    classes = page.eval_on_selector_all(
        "#classes tbody tr", "rows => rows.map(r => r.dataset.class)"
    )
    values = data["classes"]["values"][unit]
    order = sorted(range(len(values)), key=lambda j: (-values[j], j))
    assert classes == [str(data["classes"]["ids"][j]) for j in order]
    if layer == "layer1.0":
        page.wait_for_function("() => document.getElementById('looks-for').complete")
        assert page.eval_on_selector("#looks-for", "img => img.naturalWidth") == 32
    else:
        assert page.locator("#looks-for").count() == 0
    assert not re.search(r"\b(null|undefined|NaN)\b", page.inner_text("#app"))
    others = [url for url in requested if "/data/" in url and not url.endswith("manifest.js")]
    assert len(others) == 1 and others[0].endswith(f"/data/{layer}.js")
    assert not [url for url in requested if url.startswith(("http:", "https:"))]


def test_units_sort_by_statistics_and_filter_by_number(page, built):
    index, examples, _ = built
    open_offline(page, f"{index.as_uri()}#layer2")
    page.wait_for_selector("#units tbody tr")
    units = lambda: page.eval_on_selector_all(  # noqa: E731
        "#units tbody tr", "rows => rows.map(r => Number(r.dataset.unit))"
    )
    assert units() == list(range(128))
    data = layer_data(index.parent, "layer2")
    for key in ("mean", "sparsity"):
        page.click(f"th[data-sort={key}]")  # highest first
        values = np.array(data[key])
        assert units() == sorted(range(128), key=lambda u: (-values[u], u))
        page.click(f"th[data-sort={key}]")  # then lowest first
        assert units() == sorted(range(128), key=lambda u: (values[u], u))
    assert data["mean"] == pytest.approx(examples.mean("layer2").tolist(), rel=1e-5)
    page.fill("#unit-search", "12")
    assert sorted(units()) == [12, *range(120, 128)]
    page.click("#units a[href$='/120']")
    page.wait_for_selector("#crops figure.crop")
    assert page.url.endswith("#layer2/120")
    page.go_back()
    page.wait_for_selector("#units tbody tr")
    assert page.url.endswith("#layer2")
