"""The command line: ``nodegraph run | batch | validate | import | export | nodes | edit``, all through the public API.

Exit codes: 0 success, 1 a problem with the input (workflow, parameter, file,
a node that failed), 2 a usage error, 130 cancelled. User mistakes print one
line per problem and no traceback (``--debug`` shows it for a failed node).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from pathlib import Path

MAX_LISTED_PROBLEMS = 50


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("cancelled", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nodegraph", description="Run and check node-graph workflows.")
    sub = parser.add_subparsers(dest="command")

    run = sub.add_parser("run", help="run a workflow headless and write its outputs")
    run.add_argument("workflow", help="a workflow .json, or a PNG this program saved")
    run.add_argument("--set", dest="sets", action="append", default=[], metavar="NODE.PARAM=VALUE",
                     help="override a parameter (VALUE is read as JSON when it parses, else as text)")
    run.add_argument("--target", dest="targets", action="append", metavar="NODE",
                     help="run only what this node needs (repeatable; default: every output node)")
    run.add_argument("--output-dir", default="output", help="folder for written files (default: ./output)")
    run.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    run.add_argument("--json", action="store_true", help="print a machine-readable report on stdout")
    run.add_argument("--debug", action="store_true", help="show the traceback when a node fails")
    run.set_defaults(func=_cmd_run)

    bat = sub.add_parser("batch", help="run a workflow once per job: rows of a file, a parameter sweep, a folder of images")
    bat.add_argument("workflow", help="a workflow .json, or a PNG this program saved")
    bat.add_argument("--jobs", required=True, metavar="JOBS",
                     help="a .csv or .jsonl file (a job a row, columns NODE.PARAM), a sweep spec (.json or .yaml), "
                          "or a folder of images for the Load Image node")
    bat.add_argument("--input", dest="input_node", metavar="NODE",
                     help="with a folder of images: the Load Image node they go to (when there are several)")
    bat.add_argument("--output-dir", default="output", metavar="DIR",
                     help="a folder per job and manifest.jsonl go here; run again to resume (default: ./output)")
    bat.add_argument("--engine", choices=("local", "ray"), default="local",
                     help="local: this process, one job at a time; ray: a pool of Ray actors")
    bat.add_argument("--address", metavar="ADDR", help="Ray cluster to join (default: RAY_ADDRESS, else a local one)")
    bat.add_argument("--workers", type=int, metavar="N", help="Ray actors (default: as many as fit)")
    bat.add_argument("--gpus-per-worker", type=float, metavar="G",
                     help="GPUs each Ray actor holds (default: 1 when the cluster has GPUs, else 0)")
    bat.add_argument("--retries", type=int, default=2, metavar="R",
                     help="Ray: times a job is tried again when its worker dies or it fails unexpectedly (default 2)")
    bat.add_argument("--retry-failed", action="store_true", help="run again the jobs the manifest lists as failed")
    bat.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    bat.set_defaults(func=_cmd_batch)

    val = sub.add_parser("validate", help="check a workflow and list every problem")
    val.add_argument("workflow")
    val.add_argument("--json", action="store_true")
    val.set_defaults(func=_cmd_validate)

    imp = sub.add_parser("import", help="convert a ComfyUI workflow (API or UI format, or a PNG it wrote)")
    imp.add_argument("file", help="a ComfyUI workflow .json, or a PNG ComfyUI saved")
    imp.add_argument("-o", "--output", metavar="OUT.json",
                     help="where to write our workflow (default: FILE's name with .nodegraph.json, beside it)")
    imp.add_argument("--json", action="store_true", help="print the import report as JSON on stdout")
    imp.add_argument("--strict", action="store_true", help="exit 1 when any node could not be converted")
    imp.set_defaults(func=_cmd_import)

    exp = sub.add_parser("export", help="write a workflow in another program's format (ComfyUI's API format)")
    exp.add_argument("workflow", help="a workflow .json, or a PNG this program saved")
    exp.add_argument("--to", choices=("comfy-api",), default="comfy-api",
                     help="comfy-api: the JSON a ComfyUI server's /prompt takes (default)")
    exp.add_argument("-o", "--output", metavar="OUT.json", help="where to write it (default: stdout)")
    exp.set_defaults(func=_cmd_export)

    edit = sub.add_parser("edit", help="open the editor (needs the gui extra: pip install 'nodegraph[gui]')")
    edit.add_argument("workflow", nargs="?", help="a workflow .json or a PNG this program saved")
    edit.add_argument("--output-dir", help="where Save nodes write (default: the editor's setting, 'output')")
    edit.add_argument("--device", help="cpu, cuda, mps or auto (default: the editor's setting, 'auto')")
    edit.set_defaults(func=_cmd_edit)

    nodes = sub.add_parser("nodes", help="list the node types")
    nodes.add_argument("--json", action="store_true", help="full declarations as JSON")
    nodes.set_defaults(func=_cmd_nodes)
    return parser


def _find_models(workflow) -> None:
    """Before a run: every model the workflow names must be found (renamed ones by hash, said on stderr);
    then record them in the workflow each saved PNG embeds."""
    import nodegraph
    from nodegraph import models

    missing, notes = models.check(workflow)
    for note in notes:
        print(note, file=sys.stderr)
    if missing:
        raise nodegraph.WorkflowInvalid(missing)
    models.record(workflow)


def _say_imported(workflow, source: str) -> None:
    """One line on stderr when the workflow was converted from ComfyUI's format at the door."""
    report = getattr(workflow, "imported", None)
    if report is not None:
        notes = f"; {len(report.notes)} conversion notes (nodegraph import {source} lists them)" if report.notes else ""
        print(f"{source}: converted from ComfyUI, {report.mapped} of {report.nodes} nodes{notes}", file=sys.stderr)


def _err(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)


def _print_problems(problems, source: str) -> None:
    for problem in problems[:MAX_LISTED_PROBLEMS]:
        print(f"{source}: {problem}", file=sys.stderr)
    if len(problems) > MAX_LISTED_PROBLEMS:
        print(f"{source}: ... and {len(problems) - MAX_LISTED_PROBLEMS} more problems", file=sys.stderr)


def _cmd_run(args) -> int:
    import nodegraph
    from nodegraph import overrides

    try:
        workflow = nodegraph.load(args.workflow)
        _say_imported(workflow, args.workflow)
        for text in args.sets:
            node_id, param, raw = overrides.parse_assignment(text)
            try:
                workflow.inner_node(node_id)
            except nodegraph.NodegraphError as e:
                raise nodegraph.NodegraphError(f"--set {text!r}: {e}") from None
            workflow.set_param(node_id, param, overrides.check_text(workflow, node_id, param, raw))
        _find_models(workflow)
        engine = nodegraph.Engine(device=args.device)
        engine.torch_device  # a bad --device is reported before anything runs
    except nodegraph.WorkflowInvalid as e:
        _print_problems(e.problems, args.workflow)
        return 1
    except (nodegraph.NodegraphError, ValueError) as e:
        _err(str(e))
        return 1

    progress = _Progress(enabled=sys.stderr.isatty())
    cancel = threading.Event()
    try:
        result = engine.run(
            workflow, targets=args.targets, on_event=progress, cancel=cancel, output_dir=Path(args.output_dir)
        )
        code = 0
    except nodegraph.NodeFailed as e:
        result, code = e.result, 1
        progress.close()
        _err(str(e))
        if args.debug and e.__cause__ is not None:
            import traceback

            traceback.print_exception(e.__cause__)
    except nodegraph.RunCancelled as e:
        result, code = e.result, 130
    except KeyboardInterrupt:
        cancel.set()
        progress.close()
        print("cancelled", file=sys.stderr)
        return 130
    except nodegraph.NodegraphError as e:  # e.g. an unknown --target
        _err(str(e))
        return 1
    progress.close()
    if args.json:
        print(json.dumps(result.report(), indent=2))
    elif code == 0:
        for path in result.files:
            print(path)
        ran, cached = len(result.executed), len(result.cached)
        print(f"{ran} node{'s' * (ran != 1)} ran, {cached} cached, {len(result.files)} files written", file=sys.stderr)
    return code


def _cmd_batch(args) -> int:
    import nodegraph
    from nodegraph.batching import BatchCancelled

    if args.engine == "local":
        for flag, value in (("--address", args.address), ("--workers", args.workers),
                            ("--gpus-per-worker", args.gpus_per_worker)):
            if value is not None:
                _err(f"{flag} is for --engine ray")
                return 1
    try:
        workflow = nodegraph.load(args.workflow)
        _find_models(workflow)
        rows = nodegraph.batch(
            workflow, args.jobs, engine=args.engine, output_dir=args.output_dir, device=args.device,
            input_node=args.input_node, address=args.address, workers=args.workers,
            gpus_per_worker=args.gpus_per_worker, retries=args.retries, retry_failed=args.retry_failed,
        )
    except nodegraph.WorkflowInvalid as e:
        _print_problems(e.problems, args.workflow)
        return 1
    except BatchCancelled as e:
        print(str(e), file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("cancelled; run the batch again with the same output folder to go on", file=sys.stderr)
        return 130
    except nodegraph.NodegraphError as e:
        _err(str(e))
        return 1
    failed = [row for row in rows if row["status"] != "done"]
    for row in failed[:MAX_LISTED_PROBLEMS]:
        print(f"job {row['job']} failed: {row['error']}", file=sys.stderr)
    if len(failed) > MAX_LISTED_PROBLEMS:
        print(f"... and {len(failed) - MAX_LISTED_PROBLEMS} more failed jobs", file=sys.stderr)
    manifest = Path(args.output_dir) / "manifest.jsonl"
    print(f"{len(rows) - len(failed)} of {len(rows)} jobs done, {len(failed)} failed; manifest: {manifest}",
          file=sys.stderr)
    return 1 if failed else 0


class _Progress:
    """A tqdm bar per node on a terminal; silent otherwise (the report says what ran)."""

    def __init__(self, enabled: bool):
        self.enabled, self.bar = enabled, None

    def __call__(self, event) -> None:
        if not self.enabled:
            return
        if event.kind == "started":
            from tqdm import tqdm

            self.close()
            self.bar = tqdm(total=100, desc=event.node, leave=True, file=sys.stderr,
                            bar_format="{desc:>16} {bar} {percentage:3.0f}% {elapsed}")
        elif event.kind == "progress" and self.bar is not None:
            self.bar.n = round(100 * max(0.0, min(1.0, event.fraction or 0)))
            self.bar.refresh()
        elif event.kind in ("finished", "failed", "cancelled") and self.bar is not None:
            if event.kind == "finished":
                self.bar.n = 100
            self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _cmd_validate(args) -> int:
    import nodegraph

    try:
        workflow = nodegraph.load(args.workflow, strict=False)
    except nodegraph.NodegraphError as e:
        if args.json:
            print(json.dumps({"ok": False, "problems": [{"message": str(e)}]}, indent=2))
        _err(str(e))
        return 1
    from nodegraph import models

    _say_imported(workflow, args.workflow)
    missing, notes = models.check(workflow, relink=False)
    problems = workflow.problems + missing
    for note in notes:
        print(note, file=sys.stderr)
    if args.json:
        listed = [{"node": p.node, "port": p.port, "message": p.message} for p in problems]
        print(json.dumps({"ok": not problems, "problems": listed}, indent=2))
    elif problems:
        _print_problems(problems, args.workflow)
    else:
        print(f"{args.workflow}: ok ({len(workflow.nodes)} nodes, {len(workflow.links)} links)")
    return 1 if problems else 0


def _cmd_import(args) -> int:
    import nodegraph

    try:
        workflow = nodegraph.load(args.file, strict=False)
    except nodegraph.NodegraphError as e:
        _err(str(e))
        return 1
    report = workflow.imported
    if report is None:
        _err(f"{args.file} is not a ComfyUI workflow (it is already one of ours: run or edit it as it is)")
        return 1
    source = Path(args.file)
    output = Path(args.output) if args.output else source.with_name(source.stem + ".nodegraph.json")
    nodegraph.rebase(workflow, output.resolve().parent)  # a picture beside the ComfyUI file is still found
    try:
        nodegraph.save(workflow, output)
    except OSError as e:
        _err(f"cannot write {output}: {e.strerror or e}")
        return 1
    if args.json:
        print(json.dumps(report.to_json(str(output)), indent=2))
    else:
        kept = f", {report.subgraphs} subgraph{'s' * (report.subgraphs != 1)} kept" if report.subgraphs else ""
        print(f"{args.file}: {report.mapped} of {report.nodes} ComfyUI nodes converted{kept}; wrote {output}",
              file=sys.stderr)
        for item in report.unmapped:
            print(f"  not converted: node {item['id']} ({item['class_type']}): {item['why']}", file=sys.stderr)
        for note in report.notes:
            print(f"  note: {note}", file=sys.stderr)
        unmapped = {u["id"] for u in report.unmapped}
        for problem in workflow.problems:
            if problem.node not in unmapped:
                print(f"  problem: {problem}", file=sys.stderr)
    return 1 if args.strict and report.unmapped else 0


def _cmd_export(args) -> int:
    import nodegraph
    from nodegraph import comfy
    from nodegraph.files import atomic_write

    try:
        workflow = nodegraph.load(args.workflow, strict=False)
        problems = [p for p in workflow.problems  # a ComfyUI placeholder goes back out as its own class
                    if p.node not in workflow.nodes or not workflow.nodes[p.node].type.startswith(comfy.PLACEHOLDER)]
        if problems:
            raise nodegraph.WorkflowInvalid(problems, args.workflow)
        notes: list[str] = []
        text = json.dumps(comfy.export_api(workflow, notes), indent=2) + "\n"
    except nodegraph.WorkflowInvalid as e:
        _print_problems(e.problems, args.workflow)
        return 1
    except nodegraph.NodegraphError as e:
        _err(f"{args.workflow}: {e}")
        return 1
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    if args.output is None:
        sys.stdout.write(text)
        return 0
    try:
        atomic_write(args.output, text.encode("utf-8"))
    except OSError as e:
        _err(f"cannot write {args.output}: {e.strerror or e}")
        return 1
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


def _cmd_edit(args) -> int:
    try:
        from gui.app import main as editor
    except ImportError as e:
        _err(f"the editor needs PySide6: pip install 'nodegraph[gui]' ({e})")
        return 1
    return editor(args.workflow, output_dir=args.output_dir, device=args.device)


def _cmd_nodes(args) -> int:
    import nodegraph

    from nodegraph import library

    types = nodegraph.REGISTRY.all() + library.declarations(log=lambda text: print(text, file=sys.stderr))
    if args.json:
        print(json.dumps([t.describe() for t in types], indent=2))
        return 0
    rows = [("TYPE", "TITLE", "CATEGORY", "INPUTS", "OUTPUTS", "PARAMETERS")]
    for t in types:
        rows.append((
            t.id,
            t.title,
            t.category,
            ", ".join(f"{i.name}:{i.type}{'?' if i.optional else ''}" for i in t.inputs) or "-",
            ", ".join(f"{o.name}:{o.type}" for o in t.outputs) or "-",
            ", ".join(f"{p.name}={p.default!r}" for p in t.params) or "-",
        ))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[5])
    return 0


if __name__ == "__main__":
    sys.exit(main())
