"""The JSON Schema of the workflow file, shipped for text editors and other tools."""

from importlib.resources import files


def workflow_schema_path():
    return files(__name__) / "workflow.schema.json"
