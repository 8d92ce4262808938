"""The workflow the editor opens with when it is started without one: the demo model drawing a prompt, shown
in a Preview (nothing is written to disk until the user adds a Save node), ready to run at once."""

from __future__ import annotations

PROMPT = "a large red circle on the left and a yellow square on the right, blue background"


def first_run_workflow():
    """Load Checkpoint (demo-sd) → Text Condition → Sampler → VAE Decode → Image Grid → Preview, 4 pictures."""
    import nodegraph

    wf = nodegraph.Workflow()
    wf.add_node("model.checkpoint", "checkpoint", params={"model": "demo-sd"}, position=(0, 0))
    wf.add_node("cond.text", "prompt", params={"prompt": PROMPT}, position=(300, -40))
    wf.add_node("latent.empty", "size", params={"width": 64, "height": 64, "batch_size": 4}, position=(300, 240))
    wf.add_node("sampling.sampler", "sampler", params={"steps": 20, "cfg": 4.0, "seed": 1}, position=(600, 0))
    wf.add_node("vae.decode", "decode", position=(900, 0))
    wf.add_node("image.grid", "grid", position=(1160, 0))
    wf.add_node("image.preview", "preview", position=(1420, 0))
    for source, output, target, input in (
        ("checkpoint", "text_encoder", "prompt", "text_encoder"), ("checkpoint", "vae", "size", "vae"),
        ("checkpoint", "model", "sampler", "model"), ("prompt", "conditioning", "sampler", "conditioning"),
        ("size", "latent", "sampler", "latent"), ("sampler", "latent", "decode", "latent"),
        ("checkpoint", "vae", "decode", "vae"), ("decode", "image", "grid", "image"),
        ("grid", "image", "preview", "image"),
    ):
        wf.connect(source, output, target, input)
    wf.add_group("Demo: change the prompt or the seed, then Run (Ctrl+Enter)", list(wf.nodes))
    return wf
