"""Run by test_accelerate.py under ``accelerate launch --cpu --num_processes N``: train the toy task."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from clinprompt.artifacts import write_json  # noqa: E402
from clinprompt.backbone import tiny_backbone  # noqa: E402
from clinprompt.prompts import SoftPrompt  # noqa: E402
from clinprompt.train import PromptObjective, train  # noqa: E402
from clinprompt.train.workspace import process_state  # noqa: E402
from conftest import make_examples, quick_args  # noqa: E402


def main(out: str) -> None:
    tiny = tiny_backbone(seed=0, device="cpu")
    prompt = SoftPrompt.create(4, tiny.model.get_input_embeddings().weight, "vocab", seed=0)
    args = quick_args(steps=5, batch_size=6, grad_accum=1, eval_every=3)
    train(
        PromptObjective(tiny.model, prompt),
        make_examples(18, seed=1),
        args,
        out,
        pad_id=tiny.tokenizer.pad_token_id,
        dev_set=make_examples(6, seed=2),
    )
    state = process_state()  # each process says who it was: the test checks there were two
    write_json(Path(out) / f"process{state.process_index}.json", {"world": state.num_processes})


if __name__ == "__main__":
    main(sys.argv[1])
