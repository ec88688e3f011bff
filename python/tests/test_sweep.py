"""The sweep's peer runner (a child process per peer that may crash or hang
on a case) and its table."""

import json
import os
import sys
import textwrap

import numpy as np
import onnx
from onnx import TensorProto, helper

from conftest import REPO

sys.path.insert(0, os.path.join(REPO, "python", "tools"))
import sweep  # noqa: E402


def relu_model(graph_name="g", domain=""):
    node = helper.make_node("Relu", ["x"], ["y"], domain=domain)
    graph = helper.make_graph(
        [node],
        graph_name,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
    )
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    return helper.make_model(graph, opset_imports=opsets, ir_version=8)


def write_case(out, name, model=None, expected_shift=0.0, data=True, group="Relu"):
    folder = os.path.join(out, "cases", name)
    entry = {"name": name, "kind": "node" if model is not None else "skipped", "group": group, "folder": folder}
    if model is None:
        return entry
    os.makedirs(folder)
    onnx.save(model, os.path.join(folder, "model.onnx"))
    if data:
        x = np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)
        np.savez(os.path.join(folder, "inputs.npz"), x=x)
        np.savez(os.path.join(folder, "expected.npz"), y=np.maximum(x, 0) + expected_shift)
    return entry


# A stand-in peer served by the real peers.py: onnx2torch, except that the
# graph's name makes it crash, hang or print to stdout.
FAKE_PEER = """
import os, signal, sys, time, types
sys.path.insert(0, {tools!r})
import onnx2torch
import peers

def convert(model):
    name = model.graph.name
    if name == "crash":
        os.kill(os.getpid(), signal.SIGKILL)
    if name == "hang":
        time.sleep(60)
    if name == "noisy":
        print("chatter on stdout")
    return onnx2torch.convert(model)

sys.modules["fakepeer"] = types.ModuleType("fakepeer")
peers.PEERS["fakepeer"] = convert
peers.main("fakepeer")
"""


def test_peer_runner_survives_crashes_and_hangs(tmp_path):
    out = str(tmp_path)
    index = [
        write_case(out, "a_verified", relu_model()),
        write_case(out, "b_mismatch", relu_model(), expected_shift=1.0),
        write_case(out, "c_crash", relu_model("crash")),
        write_case(out, "d_after_crash", relu_model()),
        write_case(out, "e_hang", relu_model("hang")),
        write_case(out, "f_after_hang", relu_model("noisy")),
        write_case(out, "g_unsupported", relu_model(domain="example.custom")),
        write_case(out, "h_no_data", relu_model(), data=False),
        write_case(out, "i_skipped"),
    ]
    with open(os.path.join(out, "cases.json"), "w") as f:
        json.dump(index, f)
    script = tmp_path / "fake_peer.py"
    script.write_text(textwrap.dedent(FAKE_PEER.format(tools=os.path.join(REPO, "python", "tools"))))

    sweep.run_peer(out, "onnx2fx", [sys.executable, str(script)], timeout=5)

    with open(sweep.peer_results_path(out, "onnx2fx")) as f:
        data = json.load(f)
    got = {name: r["result"] for name, r in data["results"].items()}
    assert got == {
        "a_verified": "verified",
        "b_mismatch": "mismatch",
        "c_crash": "crashed",
        "d_after_crash": "verified",
        "e_hang": "crashed",
        "f_after_hang": "verified",
        "g_unsupported": "unsupported",
        "h_no_data": "verified",
        "i_skipped": "skipped",
    }
    assert "SIGKILL" in data["results"]["c_crash"]["reason"]
    assert "no answer within 5s" in data["results"]["e_hang"]["reason"]
    assert data["starts"] == 3  # the first, and one after each lost case
    assert data["versions"]["torch"]
    assert not os.path.exists(os.path.join(out, "peers", "onnx2fx", "io"))


def report(folder, verified, message=""):
    if verified:
        rep = {"normalisation": {"passes": []}}
        name = "model.report.json"
    else:
        rep = {"status": "failed", "failure": {"stage": "convert", "message": message}}
        name = "model.failed.report.json"
    with open(os.path.join(folder, name), "w") as f:
        json.dump(rep, f)


def test_table_lists_cases_only_a_peer_verifies(tmp_path):
    out = str(tmp_path)
    index = [
        write_case(out, "both", relu_model()),
        write_case(out, "peer_only", relu_model(), group="Foo"),
        write_case(out, "neither", relu_model(), group="Foo"),
        write_case(out, "seq", group="Foo"),
    ]
    report(index[0]["folder"], True)
    report(index[1]["folder"], False, "model.onnx: onnx2torch cannot convert 1 node: Foo")
    report(index[2]["folder"], False, "model.onnx: onnx2torch cannot convert 1 node: Foo")
    with open(os.path.join(out, "cases.json"), "w") as f:
        json.dump(index, f)
    unsupported = {"result": "unsupported", "reason": "no"}
    with open(os.path.join(out, "baseline.json"), "w") as f:
        json.dump({"both": unsupported, "peer_only": unsupported, "neither": unsupported, "seq": sweep.SKIPPED}, f)
    verified = {"result": "verified"}
    versions = {"torch": "9.9", "onnx": "1.0", "numpy": "2.0"}
    peer = {"both": verified, "peer_only": verified, "neither": unsupported, "seq": sweep.SKIPPED}
    for name, results in (("onnx2pytorch", peer), ("onnx2fx", {"both": verified})):  # onnx2fx's: stale
        os.makedirs(os.path.join(out, "peers", name))
        with open(sweep.peer_results_path(out, name), "w") as f:
            json.dump({"versions": {name: "0.1", **versions}, "results": results}, f)

    sweep.table(out, str(tmp_path / "coverage.md"))

    text = (tmp_path / "coverage.md").read_text()
    assert "| result | onnx2pt | onnx2torch alone | onnx2pytorch 0.1 |" in text
    assert "onnx2fx" not in text  # results for other cases are left out
    assert "| verified | 1 | 0 | 2 |" in text
    section = text.split("## Cases another converter verifies and onnx2pt does not")[1].split("## Per op")[0]
    rows = [line for line in section.splitlines() if line.startswith("| Foo")]
    assert rows == ["| Foo | peer_only | onnx2pytorch 0.1 | unsupported: onnx2torch cannot convert 1 node: Foo |"]
    assert "onnx2pt verifies 0 cases that none of the others does" in section
    assert "| Foo | 3 | 0/0/2/0/0/0/1 | 0/0/2/0/0/0/1 | 1/0/1/0/0/0/1 |" in text


def test_peer_names():
    assert sweep.peer_names("1") == list(sweep.PEERS)
    assert sweep.peer_names("0") == []
    assert sweep.peer_names("onnx2fx") == ["onnx2fx"]
