"""Write CLIP's tokenizer files (vocab.json, merges.txt) into nodes/configs/clip_tokenizer/.

Single-file checkpoints carry weights but no tokenizer, and nothing may be fetched at run time, so the
CLIP tokenizer ships with the package. Its vocabulary is derived, the way CLIP defines it, from the BPE
merges file that the open-clip-torch package on PyPI carries (MIT licence): the 256 byte symbols, the
same with an end-of-word mark, one entry per merge, then the start and end tokens.

    python scripts/make_clip_tokenizer.py   # downloads the open-clip-torch wheel with pip, once
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "nodes" / "configs" / "clip_tokenizer"
WHEEL = "open-clip-torch==3.3.0"
MERGES = 49152 - 256 - 2  # CLIP keeps the first 48,894 merges


def main() -> None:
    from transformers.convert_slow_tokenizer import bytes_to_unicode  # CLIP's byte-to-symbol table

    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", WHEEL, "-d", tmp], check=True)
        [wheel] = Path(tmp).glob("*.whl")
        with zipfile.ZipFile(wheel) as z:
            text = gzip.decompress(z.read("open_clip/bpe_simple_vocab_16e6.txt.gz")).decode("utf-8")
    merges = [tuple(line.split()) for line in text.split("\n")[1:MERGES + 1]]
    symbols = list(bytes_to_unicode().values())
    vocab = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges] + ["<|startoftext|>", "<|endoftext|>"]
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "vocab.json").write_text(json.dumps({token: i for i, token in enumerate(vocab)}, ensure_ascii=False))
    (OUT / "merges.txt").write_text("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n")
    print(f"{OUT}: {len(vocab)} tokens, {len(merges)} merges")


if __name__ == "__main__":
    main()
