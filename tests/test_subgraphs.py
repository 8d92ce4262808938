"""Subgraphs as a user meets them: made from a selection, run, cached, edited per instance, saved, unpacked."""

import json

import pytest

import nodegraph
from nodegraph.document import from_document
from nodegraph.expand import flatten
from nodegraph.subgraph_edit import make_subgraph, promote, remove_slot, rename_slot, unpack

from conftest import CALLS, TEST_NODES


def two_blocks(wf):
    """c1 -> [a1 -> a2] -> out1 and c2 -> [a1 -> a2] -> out2, the bracketed part one definition used twice."""
    wf.add_node("test.const", "c1", params={"value": 5}, position=(0, 0))
    wf.add_node("test.add", "a1", params={"k": 1}, position=(200, 0))
    wf.add_node("test.add", "a2", params={"k": 10}, position=(400, 40))
    wf.add_node("test.sink", "out1", position=(600, 0))
    wf.connect("c1", "value", "a1", "a")
    wf.connect("a1", "value", "a2", "a")
    wf.connect("a2", "value", "out1", "x")
    block = make_subgraph(wf, ["a1", "a2"], title="Add twice")
    wf.add_node("test.const", "c2", params={"value": 100}, position=(0, 200))
    wf.add_node(block.type, "second", position=(300, 200))
    wf.add_node("test.sink", "out2", position=(600, 200))
    wf.connect("c2", "value", "second", "a")
    wf.connect("second", "value", "out2", "x")
    return block


def test_making_a_subgraph_keeps_what_the_workflow_computes(wf, engine):
    wf.add_node("test.const", "c1", params={"value": 5})
    wf.add_node("test.add", "a1", params={"k": 1})
    wf.add_node("test.add", "a2", params={"k": 10})
    wf.add_node("test.sink", "out")
    wf.connect("c1", "value", "a1", "a")
    wf.connect("a1", "value", "a2", "a")
    wf.connect("a2", "value", "out", "x")
    instance = make_subgraph(wf, ["a1", "a2"], title="Add twice")
    assert instance.id == "add_twice" and instance.type == "subgraph:add_twice"
    assert sorted(wf.nodes) == ["add_twice", "c1", "out"]
    sub = wf.subgraphs["add_twice"]
    assert [(s.name, str(s.type), s.to) for s in sub.inputs] == [("a", "INT", [("a1", "a")])]
    assert [(s.name, s.source) for s in sub.outputs] == [("value", ("a2", "value"))]
    assert [str(l) for l in wf.links] == ["c1.value -> add_twice.a", "add_twice.value -> out.x"]
    result = engine.run(wf)
    assert result.executed == ["c1", "add_twice/a1", "add_twice/a2", "out"]
    assert result.outputs["out"]["value"] == 16


def test_an_edit_inside_one_instance_reruns_that_instance_only(wf, engine):
    two_blocks(wf)
    first = engine.run(wf)
    assert first.outputs["out1"]["value"] == 16 and first.outputs["out2"]["value"] == 111
    wf.set_param("add_twice/a2", "k", 20)  # this instance's own value: the definition is untouched
    result = engine.run(wf)
    assert result.executed == ["add_twice/a2", "out1"]
    assert result.reasons["add_twice/a2"] == "parameter 'k' changed (10 -> 20)"
    assert result.reasons["out1"] == "input 'x' from node 'add_twice/a2' changed"
    assert result.outputs["out1"]["value"] == 26 and result.outputs["out2"]["value"] == 111
    assert wf.subgraphs["add_twice"].body.nodes["a2"].params["k"] == 10


def test_editing_the_definition_reruns_every_instance(wf, engine):
    block = two_blocks(wf)
    engine.run(wf)
    wf.subgraphs[block.id].body.set_param("a1", "k", 2)
    result = engine.run(wf)
    assert result.executed == ["add_twice/a1", "add_twice/a2", "out1", "second/a1", "second/a2", "out2"]
    assert result.outputs["out2"]["value"] == 112


def test_two_instances_given_the_same_inputs_run_once(wf, engine):
    block = two_blocks(wf)
    wf.connect("c1", "value", "second", "a")
    result = engine.run(wf)
    assert "add_twice/a1" in result.executed and "second/a1" in result.cached and "second/a2" in result.cached
    assert CALLS.get("second/a1") is None
    assert result.outputs["out2"]["value"] == result.outputs["out1"]["value"] == 16
    assert block.id in wf.subgraphs


def test_reasons_and_events_name_inner_nodes_by_path(wf, engine):
    two_blocks(wf)
    engine.run(wf)
    wf.set_param("c1", "value", 6)
    events = []
    result = engine.run(wf, on_event=events.append)
    assert result.reasons["add_twice/a1"] == "input 'a' from node 'c1' changed"
    assert result.reasons["add_twice/a2"] == "input 'a' from node 'add_twice/a1' changed"
    assert [e.node for e in events if e.kind == "started"] == ["c1", "add_twice/a1", "add_twice/a2", "out1"]


def test_a_promoted_parameter_drives_the_inner_one_per_instance(wf, engine):
    block = two_blocks(wf)
    sub = wf.subgraphs[block.id]
    promote(sub, "a1", "k", "boost")
    assert wf.nodes["second"].params["boost"] == 1  # instances start at the inner value
    engine.run(wf)
    wf.set_param("second", "boost", 7)
    result = engine.run(wf)
    assert result.executed == ["second/a1", "second/a2", "out2"]
    assert result.reasons["second/a1"] == "parameter 'k' changed (1 -> 7)"
    assert result.outputs["out2"]["value"] == 117 and result.outputs["out1"]["value"] == 16
    with pytest.raises(nodegraph.ParamError, match="node 'second' parameter 'boost'.*above the maximum"):
        wf.set_param("second", "boost", 10**10)


def test_a_promoted_parameter_can_be_driven_by_a_link(wf, engine):
    block = two_blocks(wf)
    promote(wf.subgraphs[block.id], "a2", "k", "boost")
    wf.add_node("test.const", "ten", params={"value": 1000})
    wf.connect("ten", "value", "second", "boost")
    assert engine.run(wf).outputs["out2"]["value"] == 100 + 1 + 1000


def test_muting_an_instance_skips_it_and_bypassing_passes_its_input_through(wf, engine):
    two_blocks(wf)
    wf.set_mode("second", "muted")
    result = engine.run(wf)
    assert result.skipped["second"] == "muted"
    assert result.skipped["out2"] == "input 'x' comes from node 'second', which is muted"
    assert not any(n.startswith("second/") for n in result.executed)
    wf.set_mode("second", "bypassed")
    result = engine.run(wf)
    assert result.bypassed == ["second"]
    assert result.outputs["out2"]["value"] == 100


def test_running_an_instance_as_target_runs_its_inner_nodes(wf, engine):
    two_blocks(wf)
    result = engine.run(wf, targets=["second"])
    assert result.executed == ["c2", "second/a1", "second/a2"]
    with pytest.raises(nodegraph.NodegraphError, match="no node with id 'nope'"):
        engine.run(wf, targets=["nope"])


def test_unpacking_restores_the_nodes_it_was_made_of(wf, engine):
    wf.add_node("test.const", "c1", params={"value": 5}, position=(0, 0))
    wf.add_node("test.add", "a1", params={"k": 1}, position=(200, 0))
    wf.add_node("test.add", "a2", params={"k": 10}, position=(400, 40))
    wf.add_node("test.sink", "out", position=(600, 0))
    wf.connect("c1", "value", "a1", "a")
    wf.connect("a1", "value", "a2", "a")
    wf.connect("c1", "value", "a2", "b")
    wf.connect("a2", "value", "out", "x")
    before = wf.dumps()
    instance = make_subgraph(wf, ["a1", "a2"])
    assert [s.to for s in wf.subgraphs[instance.id].inputs] == [[("a1", "a"), ("a2", "b")]]
    assert unpack(wf, instance.id) == ["a1", "a2"]
    assert wf.dumps() == before
    assert not wf.subgraphs


def test_unpacking_keeps_an_instances_own_values(wf, engine):
    block = two_blocks(wf)
    promote(wf.subgraphs[block.id], "a1", "k", "boost")
    wf.set_param("second", "boost", 7)
    wf.set_param("second/a2", "k", 30)
    expected = engine.run(wf).outputs["out2"]["value"]
    new_ids = unpack(wf, "second")
    assert new_ids == ["a1", "a2"]
    assert wf.nodes["a1"].params["k"] == 7 and wf.nodes["a2"].params["k"] == 30
    assert block.id in wf.subgraphs  # the other instance still uses it
    assert engine.run(wf).outputs["out2"]["value"] == expected == 100 + 7 + 30


def test_renaming_and_removing_slots_carry_the_instances_along(wf, engine):
    block = two_blocks(wf)
    sub = wf.subgraphs[block.id]
    rename_slot(sub, "a", "number")
    rename_slot(sub, "value", "total")
    assert [str(l) for l in wf.links if "second" in str(l)] == ["c2.value -> second.number", "second.total -> out2.x"]
    assert engine.run(wf).outputs["out2"]["value"] == 111
    with pytest.raises(nodegraph.NodegraphError, match="already has an output or|not a name"):
        rename_slot(sub, "total", "9lives")
    remove_slot(sub, "number")
    assert not any(l.target == "second" for l in wf.links)
    assert engine.run(wf).outputs["out2"]["value"] == 11


def nested(wf):
    """c1 -> outer[ inner[a1] -> a2 ] -> out: a subgraph inside a subgraph."""
    wf.add_node("test.const", "c1", params={"value": 5}, position=(0, 0))
    wf.add_node("test.add", "a1", params={"k": 1}, position=(200, 0))
    wf.add_node("test.add", "a2", params={"k": 10}, position=(400, 0))
    wf.add_node("test.sink", "out", position=(600, 0))
    wf.connect("c1", "value", "a1", "a")
    wf.connect("a1", "value", "a2", "a")
    wf.connect("a2", "value", "out", "x")
    inner = make_subgraph(wf, ["a1"], title="Inner")
    outer = make_subgraph(wf, [inner.id, "a2"], title="Outer")
    promote(wf.subgraphs["inner"], "a1", "k", "k1")
    promote(wf.subgraphs["outer"], inner.id, "k1", "k_inner")
    return outer


def test_nested_subgraphs_run_with_paths_two_deep(wf, engine):
    nested(wf)
    result = engine.run(wf)
    assert result.executed == ["c1", "outer/inner/a1", "outer/a2", "out"]
    assert result.outputs["out"]["value"] == 16
    wf.set_param("outer", "k_inner", 3)
    assert engine.run(wf).executed == ["outer/inner/a1", "outer/a2", "out"]
    wf.set_param("outer/inner/a1", "k", 4)  # an inner value for this instance, two levels down
    result = engine.run(wf)
    assert result.reasons["outer/inner/a1"] == "parameter 'k' changed (3 -> 4)"
    assert result.outputs["out"]["value"] == 19


def test_a_nested_workflow_saves_and_loads_byte_identical(wf, tmp_path):
    nested(wf)
    wf.set_param("outer/a2", "k", 11)
    text = wf.dumps()
    doc = json.loads(text)
    assert doc["version"] == 2
    assert [s["id"] for s in doc["subgraphs"]] == ["inner", "outer"]
    assert doc["subgraphs"][1]["params"] == [{"name": "k_inner", "to": ["inner.k1"], "default": 1}]
    assert next(n for n in doc["nodes"] if n["id"] == "outer")["overrides"] == {"a2": {"k": 11}}
    path = tmp_path / "nested.json"
    nodegraph.save(wf, path)
    again = nodegraph.load(path, registry=TEST_NODES)
    assert again.dumps() == text
    assert nodegraph.Engine(device="cpu").run(again).outputs["out"]["value"] == 17


def test_a_workflow_without_subgraphs_is_still_written_as_version_1(wf):
    wf.add_node("test.const", "c1")
    assert json.loads(wf.dumps())["version"] == 1
    with pytest.raises(nodegraph.WorkflowFileError, match="'subgraphs' needs format version 2"):
        nodegraph.loads(json.dumps({"format": "nodegraph-workflow", "version": 1, "nodes": [], "links": [],
                                    "subgraphs": []}), registry=TEST_NODES)


BAD = {
    "format": "nodegraph-workflow", "version": 2,
    "nodes": [
        {"id": "c", "type": "test.const", "version": 1},
        {"id": "use", "type": "subgraph:blk", "version": 1, "params": {"boost": "lots"},
         "overrides": {"ghost": {"k": 1}, "a1": {"k": "x"}}},
        {"id": "loop", "type": "subgraph:loop_a", "version": 1},
    ],
    "links": [{"from": "c.value", "to": "use.nope"}],
    "subgraphs": [
        {"id": "blk", "version": 1, "title": "Block",
         "inputs": [{"name": "x", "type": "IMAGE", "to": ["a1.a"]}, {"name": "x", "type": "INT", "to": ["zz.a"]}],
         "outputs": [{"name": "out", "type": "INT", "from": "a1.nothing"}, {"name": "dangling", "type": "INT"}],
         "params": [{"name": "boost", "to": ["a1.k"]}, {"name": "wrong", "to": ["n1.x"]}],
         "nodes": [{"id": "a1", "type": "test.add", "version": 1}, {"id": "n1", "type": "test.need", "version": 1}],
         "links": []},
        {"id": "loop_a", "title": "A", "inputs": [], "outputs": [],
         "nodes": [{"id": "b", "type": "subgraph:loop_b", "version": 1}], "links": []},
        {"id": "loop_b", "title": "B", "inputs": [], "outputs": [],
         "nodes": [{"id": "a", "type": "subgraph:loop_a", "version": 1}], "links": []},
    ],
}


def test_every_problem_of_a_bad_interface_is_reported_at_once_with_its_path():
    with pytest.raises(nodegraph.WorkflowInvalid) as caught:
        from_document(json.loads(json.dumps(BAD)), registry=TEST_NODES)
    found = [str(p) for p in caught.value.problems]
    expected = [
        "node 'subgraph:blk/a1' port 'a': input 'x': an IMAGE output cannot feed an INT input",
        "node 'subgraph:blk' port 'x': interface name 'x' is used twice",
        "node 'subgraph:blk' port 'x': input 'x' feeds missing node 'zz'",
        "node 'subgraph:blk/a1' port 'nothing': output 'out': 'test.add' has no output 'nothing'",
        "node 'subgraph:blk' port 'dangling': output 'dangling' is not connected inside",
        "node 'subgraph:blk/n1' port 'x': parameter 'wrong' drives n1.x, which is not a parameter of 'test.need'",
        "node 'subgraph:blk/n1' port 'x': required INT input is not connected",
        "node 'use' port 'boost': expected an integer, got 'lots'",
        "node 'use': override ghost.k: no node with id 'ghost' in subgraph 'blk'",
        "node 'use': override a1.k: expected an integer, got 'x'",
        "node 'use' port 'nope': 'subgraph:blk' has no input or parameter 'nope'",
        "node 'subgraph:loop_a': subgraph contains itself: loop_a -> loop_b -> loop_a",
    ]
    for line in expected:
        assert line in found, (line, found)


def test_the_expanded_form_is_what_the_engine_runs(wf, engine):
    two_blocks(wf)
    flat = flatten(wf)
    assert sorted(flat.nodes) == ["add_twice/a1", "add_twice/a2", "c1", "c2", "out1", "out2", "second/a1",
                                  "second/a2"]
    assert "c2.value -> second/a1.a" in [str(l) for l in flat.links]
    assert flatten(flat) is flat


def test_a_selection_a_path_leaves_and_reenters_is_refused(wf):
    wf.add_node("test.add", "a")
    wf.add_node("test.add", "b")
    wf.add_node("test.add", "c")
    wf.connect("a", "value", "b", "a")
    wf.connect("b", "value", "c", "a")
    wf.connect("a", "value", "c", "b")
    before = wf.dumps()
    with pytest.raises(nodegraph.NodegraphError, match="a path leaves it and comes back through 'b'"):
        make_subgraph(wf, ["a", "c"])
    assert wf.dumps() == before


def test_a_file_with_subgraphs_matches_the_shipped_schema(wf):
    import jsonschema

    from nodegraph.schema import workflow_schema_path

    nested(wf)
    wf.set_param("outer/inner/a1", "k", 2)
    schema = json.loads(workflow_schema_path().read_text())
    jsonschema.validate(json.loads(wf.dumps()), schema)
    version_1 = {**json.loads(wf.dumps()), "version": 1}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(version_1, schema)


def test_an_instances_own_value_wins_over_the_definitions_for_a_nested_node(wf, engine):
    nested(wf)
    wf.subgraphs["outer"].body.set_param("inner/a1", "k", 4)  # the definition of outer sets its inner's a1
    assert engine.run(wf).outputs["out"]["value"] == 5 + 4 + 10
    wf.set_param("outer/inner/a1", "k", 9)  # this instance of outer says otherwise
    result = engine.run(wf)
    assert result.outputs["out"]["value"] == 5 + 9 + 10
    assert result.reasons["outer/inner/a1"] == "parameter 'k' changed (4 -> 9)"


def test_the_schema_knows_every_port_type_a_subgraph_slot_may_have():
    from nodegraph.schema import workflow_schema_path

    sub = json.loads(workflow_schema_path().read_text())["$defs"]["subgraph"]["properties"]
    for side in ("inputs", "outputs"):
        assert sub[side]["items"]["properties"]["type"]["enum"] == [t.value for t in nodegraph.PortType]


def test_a_definition_with_clashing_input_names_still_declares_its_output_of_an_inputs_name():
    doc = {"format": "nodegraph-workflow", "version": 2, "links": [],
           "nodes": [{"id": "use", "type": "subgraph:blk", "version": 1}],
           "subgraphs": [{"id": "blk", "title": "Block",
                          "inputs": [{"name": "value", "type": "INT", "to": ["a1.a"]},
                                     {"name": "value", "type": "INT", "to": ["a1.b"]}],
                          "outputs": [{"name": "value", "type": "INT", "from": "a1.value"}],
                          "nodes": [{"id": "a1", "type": "test.add", "version": 1}], "links": []}]}
    wf = from_document(doc, registry=TEST_NODES, strict=False)
    declared = wf.registry.get("subgraph:blk")
    assert [i.name for i in declared.inputs] == ["value"] and [o.name for o in declared.outputs] == ["value"]
    assert "node 'subgraph:blk' port 'value': interface name 'value' is used twice" in [str(p) for p in wf.problems]
