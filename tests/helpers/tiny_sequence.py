"""The smallest token-policy setup: a 2-digit sort task and a 1-layer model."""

from jaxpg.sequence import model, tasks


def task_and_model():
    """``(task, model_cfg)`` of a tiny sort task and transformer."""
    task = tasks.sort_task(2)
    cfg = model.TransformerConfig(
        vocab_size=tasks.VOCAB_SIZE, width=8, num_layers=1, num_heads=2,
        max_len=task.prompt_len + task.max_new_tokens,
    )  # fmt: skip
    return task, cfg
