"""The utility nodes (nodes/image_batch.py, utility.py, strings.py) run through the engine: the numbers, the
pictures and the texts a user gets, and the sentences they read when something is refused."""

from __future__ import annotations

import math
import subprocess
import sys
import time

import pytest
import torch
from hypothesis import given, settings, strategies as st
from PIL import Image

import nodegraph
from nodegraph import NodeUserError, Output, Param, PortType as T, REGISTRY, Registry, node
from nodes._expression import LIMIT, evaluate

from conftest import REPO

W, H = 40, 30


@pytest.fixture
def pictures(tmp_path):
    """Three pictures on disk: red and blue at 40x30, a green 20x10 one."""
    paths = {}
    for name, colour, size in (("red", (255, 0, 0), (W, H)), ("blue", (0, 0, 255), (W, H)),
                               ("green", (0, 255, 0), (20, 10))):
        paths[name] = tmp_path / f"{name}.png"
        Image.new("RGB", size, colour).save(paths[name])
    return paths


def run(wf, target, tmp_path):
    """Run one target; its outputs by name."""
    return nodegraph.Engine(device="cpu").run(wf, targets=[target], output_dir=tmp_path / "out").outputs[target]


def failure(wf, target, tmp_path) -> str:
    """Run a target that must fail; the message a user reads."""
    with pytest.raises(nodegraph.NodeFailed) as e:
        run(wf, target, tmp_path)
    return str(e.value)


def loads(wf, pictures, *names):
    for name in names:
        wf.add_node("image.load", name, params={"path": str(pictures[name])})


def batch_of(wf, pictures, *names, node_id="batch", **params):
    """Load the pictures and batch them in order (nested Image Batch nodes); the last node's id."""
    loads(wf, pictures, *dict.fromkeys(names))
    source = names[0]
    for i, name in enumerate(names[1:]):
        here = node_id if i == len(names) - 2 else f"{node_id}{i}"
        wf.add_node("image.batch", here, params=params)
        wf.connect(source, "image", here, "image_a")
        wf.connect(name, "image", here, "image_b")
        source = here
    return source


# ----- Get Image Size, Image Batch, Select from Batch ------------------------------------------------

def test_get_image_size_gives_width_height_and_batch(pictures, tmp_path):
    wf = nodegraph.Workflow()
    batch_of(wf, pictures, "red", "blue", "red")
    wf.add_node("image.size", "size")
    wf.connect("batch", "image", "size", "image")
    assert run(wf, "size", tmp_path) == {"width": W, "height": H, "batch": 3}


def test_image_batch_puts_both_pictures_in_order(pictures, tmp_path):
    wf = nodegraph.Workflow()
    batch_of(wf, pictures, "red", "blue")
    out = run(wf, "batch", tmp_path)["image"]
    engine = nodegraph.Engine(device="cpu")
    red, blue = (engine.run(wf, targets=[n]).outputs[n]["image"] for n in ("red", "blue"))
    assert out.shape == (2, 3, H, W)
    assert torch.equal(out[0:1], red) and torch.equal(out[1:2], blue)


@pytest.mark.parametrize("resize", ["fill", "exact"])
def test_image_batch_resizes_the_second_picture_as_resize_would(pictures, tmp_path, resize):
    wf = nodegraph.Workflow()
    batch_of(wf, pictures, "red", "green", resize=resize)
    wf.add_node("image.resize", "resized", params={"width": W, "height": H, "mode": resize})
    wf.connect("green", "image", "resized", "image")
    out = run(wf, "batch", tmp_path)["image"]
    assert out.shape == (2, 3, H, W)
    assert torch.equal(out[1:2], run(wf, "resized", tmp_path)["image"])


def test_image_batch_with_resize_error_says_both_sizes(pictures, tmp_path):
    wf = nodegraph.Workflow()
    batch_of(wf, pictures, "red", "green", resize="error")
    message = failure(wf, "batch", tmp_path)
    assert message == ("node 'batch' failed: image_b is 20x10 and image_a 40x30: a batch holds one size; "
                       "set resize to fill or exact to bring image_b to 40x30")


@pytest.mark.parametrize("index, length, picked", [(0, 1, [0]), (1, 1, [1]), (-1, 1, [2]), (-3, 1, [0]),
                                                   (1, 2, [1, 2]), (1, 10, [1, 2])])
def test_select_from_batch_picks_by_index_counting_back_from_the_end(pictures, tmp_path, index, length, picked):
    wf = nodegraph.Workflow()
    batch_of(wf, pictures, "red", "blue", "red")
    wf.add_node("image.select", "pick", params={"index": index, "length": length})
    wf.connect("batch", "image", "pick", "image")
    whole = run(wf, "batch", tmp_path)["image"]
    assert torch.equal(run(wf, "pick", tmp_path)["image"], whole[picked])


@pytest.mark.parametrize("index", [3, -4])
def test_select_outside_the_batch_names_its_size(pictures, tmp_path, index):
    wf = nodegraph.Workflow()
    batch_of(wf, pictures, "red", "blue", "red")
    wf.add_node("image.select", "pick", params={"index": index})
    wf.connect("batch", "image", "pick", "image")
    assert failure(wf, "pick", tmp_path) == (
        f"node 'pick' failed: index {index} is outside the batch, which holds 3 pictures: use 0 to 2, "
        f"or -1 to -3 counting from the end")


# ----- Math ---------------------------------------------------------------------------------------------

def math_node(expression, **params):
    wf = nodegraph.Workflow()
    wf.add_node("value.math", "math", params={"expression": expression, **params})
    return wf


@pytest.mark.parametrize("expression, params, number, whole", [
    ("a + b", {"a": 2.0, "b": 3.5}, 5.5, 5),
    ("a / b", {"a": -7.0, "b": 2.0}, -3.5, -3),  # INT drops the fraction, towards zero
    ("2 ** 10 + 1", {}, 1025.0, 1025),
    ("(a + b) * c // 4 % 5", {"a": 1.0, "b": 2.0, "c": 10.0}, 2.0, 2),
    ("round(a / 8) * 8", {"a": 1001.0}, 1000.0, 1000),
    ("floor(a) + ceil(b) + abs(-c)", {"a": 1.5, "b": 1.5, "c": 3.0}, 6.0, 6),
    ("sqrt(a) + min(a, b, c) + max(1, 2)", {"a": 16.0, "b": -1.0}, 5.0, 5),
    ("a < b < c", {"a": 1.0, "b": 2.0, "c": 3.0}, 1.0, 1),
    ("a < b < c", {"a": 1.0, "b": 5.0, "c": 3.0}, 0.0, 0),
    ("-a + +b", {"a": 1.0, "b": 4.0}, 3.0, 3),
    ("pi * 2", {}, math.pi * 2, 6),
    ("e ** 1", {}, math.e, 2),
    ("   a   ", {"a": 9.0}, 9.0, 9),
])
def test_math_gives_float_and_int(tmp_path, expression, params, number, whole):
    out = run(math_node(expression, **params), "math", tmp_path)
    assert out == {"float": number, "int": whole}
    assert type(out["float"]) is float and type(out["int"]) is int


def test_math_reads_a_linked_size(pictures, tmp_path):
    wf = math_node("a * b / 100")
    loads(wf, pictures, "green")
    wf.add_node("image.size", "size")
    wf.connect("green", "image", "size", "image")
    wf.connect("size", "width", "math", "a")  # an INT output widens into a FLOAT parameter
    wf.connect("size", "height", "math", "b")
    assert run(wf, "math", tmp_path) == {"float": 2.0, "int": 2}


ALLOWED = ("it may use numbers, a b c, pi e, + - * / // % **, comparisons (< <= > >= == !=) and "
           "min max abs round floor ceil sqrt")


@pytest.mark.parametrize("expression, message", [
    ("__import__('os')", "calling __import__ is not allowed in a Math expression; the functions are min, max, "
                         "abs, round, floor, ceil, sqrt"),
    ("__import__('os').system('true')", f"attribute access (.system) is not allowed in a Math expression; {ALLOWED}"),
    ("().__class__.__bases__", f"attribute access (.__bases__) is not allowed in a Math expression; {ALLOWED}"),
    ("a.real", f"attribute access (.real) is not allowed in a Math expression; {ALLOWED}"),
    ("(lambda: 1)()", f"a lambda is not allowed in a Math expression; {ALLOWED}"),
    ("[x for x in (1, 2)]", f"a comprehension is not allowed in a Math expression; {ALLOWED}"),
    ("a if b else c", f"'... if ... else ...' is not allowed in a Math expression; {ALLOWED}"),
    ("a and b", f"'and' / 'or' is not allowed in a Math expression; {ALLOWED}"),
    ("a ^ 2", f"the operator ^ (a power is written **) is not allowed in a Math expression; {ALLOWED}"),
    ("'text' * 3", f"\"'text'\" is not a number; a Math expression may use numbers, a b c, pi e, "
                   "+ - * / // % **, comparisons (< <= > >= == !=) and min max abs round floor ceil sqrt"),
    ("x + 1", "unknown name 'x' in the expression; the names are a, b, c, pi, e"),
    ("eval('1')", "calling eval is not allowed in a Math expression; the functions are min, max, abs, round, "
                  "floor, ceil, sqrt"),
    ("min(a)", "min takes at least 2 numbers, got 1 in 'min(a)'"),
    ("abs(a, b)", "abs takes 1 number, got 2 in 'abs(a, b)'"),
    ("9**9**9", "'9**9**9' is too large: Math keeps every number within about ±1.8e308 (a float's range)"),
    ("2 ** 1024", "'2 ** 1024' is too large: Math keeps every number within about ±1.8e308 (a float's range)"),
    ("10.0 ** 400", "'10.0 ** 400' is too large: Math keeps every number within about ±1.8e308 (a float's range)"),
    ("1e308 * 10", "'1e308 * 10' is too large: Math keeps every number within about ±1.8e308 (a float's range)"),
    ("a / b", "division by zero in 'a / b'"),
    ("1 % 0", "division by zero in '1 % 0'"),
    ("sqrt(-1)", "'sqrt(-1)' has no real result"),
    ("(-8) ** (1 / 3)", "'(-8) ** (1 / 3)' has no real result (a negative number to a fractional power)"),
    ("a +", "'a +' is not an expression Math can read: invalid syntax"),
    ("", "the expression is empty; write one such as 'a + b'"),
    ("1" * 1001, "the expression is 1001 characters long; at most 1000 are allowed"),
])
def test_math_refuses_with_a_sentence_naming_the_node(tmp_path, expression, message):
    start = time.perf_counter()
    assert failure(math_node(expression), "math", tmp_path) == f"node 'math' failed: {message}"
    assert time.perf_counter() - start < 5  # 9**9**9 is refused before Python starts on it


def test_math_refuses_what_it_would_never_reach():
    """The whole expression is checked before any of it runs: a refused part behind a false comparison
    is still named."""
    with pytest.raises(NodeUserError, match=r"^attribute access \(.system\)"):
        evaluate("1 > 2 < __import__('os').system('true')", {"a": 0.0, "b": 0.0, "c": 0.0})


LEAVES = st.one_of(st.integers(0, 100).map(str), st.sampled_from(["a", "b", "c", "pi", "e"]),
                   st.floats(0.01, 100, allow_nan=False).map(repr))


@st.composite
def subtree(draw, children):
    """One node of the grammar over smaller expressions; powers have a small literal exponent so Python's
    own evaluation (the oracle) stays quick, and comparisons are not chained so both sides always run."""
    kind = draw(st.sampled_from(["unary", "binary", "power", "compare", "minmax", "function"]))
    x = draw(children)
    if kind == "unary":
        return f"{draw(st.sampled_from('-+'))}({x})"
    if kind == "binary":
        return f"({x}) {draw(st.sampled_from(['+', '-', '*', '/', '//', '%']))} ({draw(children)})"
    if kind == "power":
        return f"({x}) ** {draw(st.integers(-2, 3))}"
    if kind == "compare":
        return f"({x}) {draw(st.sampled_from(['<', '<=', '>', '>=', '==', '!=']))} ({draw(children)})"
    if kind == "minmax":
        rest = draw(st.lists(children, min_size=1, max_size=2))
        return f"{draw(st.sampled_from(['min', 'max']))}({', '.join([x, *rest])})"
    return f"{draw(st.sampled_from(['abs', 'round', 'floor', 'ceil', 'sqrt']))}({x})"


EXPRESSIONS = st.recursive(LEAVES, lambda children: subtree(children), max_leaves=8)
PYTHON = {"__builtins__": {}, "min": min, "max": max, "abs": abs, "round": round, "floor": math.floor,
          "ceil": math.ceil, "sqrt": math.sqrt, "pi": math.pi, "e": math.e}


def python_value(expression: str, names: dict):
    """Python's own value of an expression, or None where Python fails or leaves a float's range."""
    try:
        value = eval(expression, dict(PYTHON), dict(names))  # the test's oracle: its input is generated here
    except (ArithmeticError, ValueError):
        return None
    return None if isinstance(value, complex) or abs(value) > LIMIT else value


def parts(expression: str):
    """Every sub-expression of an expression, as text (each is an expression of its own)."""
    import ast

    tree = ast.parse(expression, mode="eval").body
    callees = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    return [ast.unparse(n) for n in ast.walk(tree) if isinstance(n, ast.expr) and id(n) not in callees]


@settings(max_examples=400, deadline=None)
@given(EXPRESSIONS, st.floats(-100, 100), st.floats(-100, 100), st.floats(-100, 100))
def test_math_agrees_with_python_on_the_grammar_it_allows(expression, a, b, c):
    names = {"a": a, "b": b, "c": c}
    expected = python_value(expression, names)
    refused = any(python_value(part, names) is None for part in parts(expression))
    if expected is None or refused:
        with pytest.raises(NodeUserError):
            evaluate(expression, names)
    else:
        assert repr(evaluate(expression, names)) == repr(expected)


# ----- Switches ---------------------------------------------------------------------------------------

SOURCES = Registry(discover=False)  # sources of LATENT and CONDITIONING without a model, beside the real switches


def _made(tag):
    return {"made_by": tag}


@node("test.latent", title="Latent", category="test", params=[Param("tag", T.STRING, "")],
      outputs=[Output("latent", T.LATENT)], registry=SOURCES)
def latent_source(ctx, tag):
    return {"latent": _made(tag)}


@node("test.conditioning", title="Conditioning", category="test", params=[Param("tag", T.STRING, "")],
      outputs=[Output("conditioning", T.CONDITIONING)], registry=SOURCES)
def conditioning_source(ctx, tag):
    return {"conditioning": _made(tag)}


for _type in ("switch.image", "switch.latent", "switch.conditioning", "switch.string", "switch.float",
              "value.string", "value.float", "value.bool"):
    SOURCES.add(REGISTRY.get(_type))

SWITCHED = {  # switch -> (source type, its output, its parameter, two values, the switch's output)
    "switch.latent": ("test.latent", "latent", "tag", ("yes", "no"), "latent"),
    "switch.conditioning": ("test.conditioning", "conditioning", "tag", ("yes", "no"), "conditioning"),
    "switch.string": ("value.string", "value", "value", ("yes", "no"), "text"),
    "switch.float": ("value.float", "value", "value", (1.5, -2.0), "value"),
}


def switch_workflow(kind, choose, linked=("on_true", "on_false")):
    source, output, param, values, _ = SWITCHED[kind]
    wf = nodegraph.Workflow(registry=SOURCES)
    wf.add_node(kind, "switch", params={"choose": choose})
    for port, value in zip(("on_true", "on_false"), values):
        if port in linked:
            wf.add_node(source, port, params={param: value})
            wf.connect(port, output, "switch", port)
    return wf


@pytest.mark.parametrize("kind", list(SWITCHED))
@pytest.mark.parametrize("choose", [True, False])
def test_a_switch_passes_on_the_chosen_input(tmp_path, kind, choose):
    _, _, _, (yes, no), output = SWITCHED[kind]
    out = run(switch_workflow(kind, choose), "switch", tmp_path)[output]
    wanted = yes if choose else no
    assert out == (_made(wanted) if kind in ("switch.latent", "switch.conditioning") else wanted)


def test_the_image_switch_passes_on_the_chosen_picture(pictures, tmp_path):
    wf = nodegraph.Workflow()
    loads(wf, pictures, "red", "blue")
    wf.add_node("switch.image", "switch", params={"choose": False})
    wf.connect("red", "image", "switch", "on_true")
    wf.connect("blue", "image", "switch", "on_false")
    assert torch.equal(run(wf, "switch", tmp_path)["image"], run(wf, "blue", tmp_path)["image"])


@pytest.mark.parametrize("kind", list(SWITCHED))
def test_a_switch_needs_only_the_chosen_input(tmp_path, kind):
    _, _, _, (yes, _), output = SWITCHED[kind]
    assert run(switch_workflow(kind, True, linked=("on_true",)), "switch", tmp_path)[output] in (yes, _made(yes))
    message = failure(switch_workflow(kind, False, linked=("on_true",)), "switch", tmp_path)
    assert message == ("node 'switch' failed: choose is off, so it passes on on_false, but nothing gives on_false "
                       "a value: link it, or flip choose")


def test_a_switch_driven_by_a_switch_value(pictures, tmp_path):
    wf = switch_workflow("switch.string", True)
    wf.add_node("value.bool", "flag", params={"value": False})
    wf.connect("flag", "value", "switch", "choose")
    assert run(wf, "switch", tmp_path)["text"] == "no"


# ----- Random Integer -----------------------------------------------------------------------------------

def random_int(seed, low, high):
    wf = nodegraph.Workflow()
    wf.add_node("value.random_int", "pick", params={"seed": seed, "min": low, "max": high})
    return wf


def test_random_integer_is_the_seeds_and_within_bounds(tmp_path):
    values = [run(random_int(seed, -3, 3), "pick", tmp_path)["value"] for seed in range(40)]
    assert set(values) == set(range(-3, 4))  # every number in reach, the bounds included
    assert values == [run(random_int(seed, -3, 3), "pick", tmp_path)["value"] for seed in range(40)]
    assert run(random_int(7, 5, 5), "pick", tmp_path) == {"value": 5}


def test_random_integer_is_the_same_in_another_process(tmp_path):
    here = [run(random_int(seed, 0, 10**9), "pick", tmp_path)["value"] for seed in (0, 1, 2**64 - 1)]
    script = ("import nodegraph; wf = nodegraph.Workflow(); out = []\n"
              "for s in (0, 1, 2**64 - 1):\n"
              "    wf.add_node('value.random_int', f'p{s}', params={'seed': s, 'min': 0, 'max': 10**9})\n"
              "r = nodegraph.Engine(device='cpu').run(wf, targets=list(wf.nodes))\n"
              "print([r.outputs[n]['value'] for n in wf.nodes])")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=120,
                          env={"PYTHONHASHSEED": "12345", "PATH": "", "HF_HUB_OFFLINE": "1"})
    assert done.stdout.strip() == str(here), done.stderr


def test_random_integer_with_min_above_max(tmp_path):
    assert failure(random_int(0, 5, 4), "pick", tmp_path) == \
        "node 'pick' failed: min 5 is above max 4; set min at or below max"


# ----- Text ---------------------------------------------------------------------------------------------

def text_node(type_id, **params):
    wf = nodegraph.Workflow()
    wf.add_node(type_id, "text", params=params)
    return wf


@pytest.mark.parametrize("type_id, params, text", [
    ("string.concat", {"a": "a cat", "b": "oil painting", "separator": ", "}, "a cat, oil painting"),
    ("string.concat", {"a": "left", "b": "right"}, "leftright"),
    ("string.replace", {"text": "a red cat on a red mat", "find": "red", "replace": "blue"},
     "a blue cat on a blue mat"),
    ("string.replace", {"text": "a.b.c", "find": ".", "replace": "/"}, "a/b/c"),  # plain text: . is a dot
    ("string.replace", {"text": "keep me", "find": "", "replace": "x"}, "keep me"),
    ("string.replace", {"text": "img 12 of 40", "find": r"(\d+) of (\d+)", "replace": r"\2-\1", "regex": True},
     "img 40-12"),
    ("string.format", {"template": "shots/{a}x{b}", "a": 512.0, "b": 768.0}, "shots/512x768"),
    ("string.format", {"template": "{a:04}_{b:.2f}_{c}", "a": 7.0, "b": 0.5, "c": -1.25}, "0007_0.50_-1.25"),
    ("string.format", {"template": "{{a}} is {a!r}", "a": 3.0}, "{a} is 3"),
])
def test_text_nodes_give_the_text(tmp_path, type_id, params, text):
    assert run(text_node(type_id, **params), "text", tmp_path) == {"text": text}


@pytest.mark.parametrize("type_id, params, message", [
    ("string.replace", {"text": "x", "find": "(", "regex": True},
     "find '(' is not a valid regular expression: missing ), unterminated subpattern at position 0"),
    ("string.replace", {"text": "x", "find": "x", "replace": r"\3", "regex": True},
     r"replace '\\3' does not fit the expression 'x': invalid group reference 3 at position 1"),
    ("string.format", {"template": "{a.__class__}"},
     "{a.__class__}: attribute and index access are not allowed in a template; write {a}, {b} or {c}"),
    ("string.format", {"template": "{a[0]}"},
     "{a[0]}: attribute and index access are not allowed in a template; write {a}, {b} or {c}"),
    ("string.format", {"template": "{} {0}"}, "fields must be named: write {a}, {b} or {c}, not {} or {0}"),
    ("string.format", {"template": "{name}"}, "{name} is not a field; the fields are {a}, {b} and {c}"),
    ("string.format", {"template": "{a:>100000}"}, "format '>100000': widths and precisions above 1000 are not "
                                                    "allowed"),
    ("string.format", {"template": "{a:{b}}", "b": 99999.0}, "format '99999': widths and precisions above 1000 "
                                                              "are not allowed"),
    ("string.format", {"template": "{b:d}", "b": 0.5}, "format 'd' does not fit the number 0.5: Unknown format code "
                                                        "'d' for object of type 'float'"),
    ("string.format", {"template": "size {a"}, "the template 'size {a' cannot be read: expected '}' before end of "
                                               "string"),
])
def test_text_nodes_refuse_with_a_sentence_naming_the_node(tmp_path, type_id, params, message):
    assert failure(text_node(type_id, **params), "text", tmp_path) == f"node 'text' failed: {message}"


def test_format_writes_a_linked_size_as_whole_numbers(pictures, tmp_path):
    wf = text_node("string.format", template="{a}x{b}, {c} picture")
    loads(wf, pictures, "green")
    wf.add_node("image.size", "size")
    wf.connect("green", "image", "size", "image")
    for field, output in zip("abc", ("width", "height", "batch")):
        wf.connect("size", output, "text", field)
    assert run(wf, "text", tmp_path) == {"text": "20x10, 1 picture"}


# ----- ComfyUI export -------------------------------------------------------------------------------------

def test_export_to_comfyui_says_where_its_classes_do_less(pictures):
    from nodegraph import comfy
    from nodegraph.comfy.export import ExportError

    wf = nodegraph.Workflow()
    loads(wf, pictures, "red", "green")
    wf.add_node("image.batch", "batch", params={"resize": "exact"})
    wf.connect("red", "image", "batch", "image_a")
    wf.connect("green", "image", "batch", "image_b")
    notes = []
    prompt = comfy.export_api(wf, notes)
    assert prompt["batch"]["class_type"] == "ImageBatch"
    assert prompt["batch"]["inputs"] == {"image1": ["red", 0], "image2": ["green", 0]}
    assert "batch: ComfyUI's Image Batch fits a second picture of another size by a centre crop, not 'exact'" in notes
    wf.add_node("string.replace", "rename", params={"text": "a1", "find": r"\d", "regex": True})
    with pytest.raises(ExportError, match="^rename: ComfyUI's StringReplace replaces plain text, not a regular "
                                          "expression$"):
        comfy.export_api(wf)
