"""Datastack layers: the same layers and coordinate space nglui writes, in the live viewer,
and the CAVE token handed to the embedded client for middleauth sources."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import warnings

import pytest

from nglive.cave import CaveAuthError, CaveNotFoundError, connect
from nglive.cave.datastack import datastack_sources


def layer_json(viewer, name):
    return viewer.state.layers[name].to_json()


def test_layers_and_coordinate_space(viewer, cave, client):
    seg = viewer.add_datastack(client)
    assert seg == "segmentation"
    assert viewer.state.dimensions.to_json() == {
        "x": [4e-09, "m"], "y": [4e-09, "m"], "z": [4e-08, "m"]}
    image = layer_json(viewer, "imagery")
    assert image["type"] == "image"
    assert image["source"][0]["url"] == f"precomputed://{cave.base_url}/image/em"
    segmentation = layer_json(viewer, "segmentation")
    assert segmentation["type"] == "segmentation"
    assert [s["url"] for s in segmentation["source"]] == [
        f"graphene://middleauth+{cave.base_url}/segmentation/table/minnie3_v1",
        f"precomputed://middleauth+{cave.base_url}/skeletoncache/api/v1/minnie65_public/"
        "precomputed/skeleton"]


def test_same_layers_as_nglui(viewer, client):
    statebuilder = pytest.importorskip("nglui.statebuilder")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nglui: "CloudVolume is not available"
        theirs = statebuilder.ViewerState().add_layers_from_client(client).to_dict()
    viewer.add_datastack(client)
    ours = viewer.state.to_json()
    assert ours["dimensions"] == theirs["dimensions"]

    def essentials(state):
        return [(la["name"], la["type"], [(s["url"], s.get("transform"))
                                          for s in la["source"]])
                for la in state["layers"]]

    assert essentials(ours) == essentials(theirs)


def test_options(viewer, client):
    assert viewer.add_datastack(client, image=False, segmentation="cave", skeletons=False) \
        == "cave"
    assert [la.name for la in viewer.state.layers] == ["cave"]
    assert len(layer_json(viewer, "cave")["source"]) == 1
    assert datastack_sources(client)["resolution"] == [4.0, 4.0, 40.0]


def test_embedded_client_gets_the_token_for_middleauth(viewer, cave, client):
    viewer.add_datastack(client)
    url = f"{viewer.server.server_url}/credentials/{viewer.ng.token}"

    def ask(server):
        body = json.dumps({"key": "middleauthapp", "parameters": server}).encode()
        with urllib.request.urlopen(urllib.request.Request(url, data=body), timeout=10) as r:
            return json.loads(r.read())

    answer = ask(cave.base_url)
    assert answer["credentials"]["accessToken"] == cave.token
    assert answer["credentials"]["tokenType"] == "Bearer"
    with pytest.raises(urllib.error.HTTPError) as e:
        ask("https://another.example.org")  # no token for servers we were not given
    assert e.value.code == 401


def test_unknown_datastack_lists_what_exists(cave):
    with pytest.raises(CaveNotFoundError, match=r"'nope'.*available: 'minnie65_public'"):
        connect("nope", cave.base_url, auth_token=cave.token, write_server_cache=False)


def test_missing_token_says_how_to_set_one(cave, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))  # no saved token
    with pytest.raises(CaveAuthError, match=r"no valid token.*save_token"):
        connect("minnie65_public", cave.base_url, write_server_cache=False)
    client = connect("minnie65_public", cave.base_url, auth_token=cave.token,
                     write_server_cache=False)
    assert client.datastack_name == "minnie65_public"
