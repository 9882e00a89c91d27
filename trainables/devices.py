"""Moving batches to where the model is: a host -> GPU copy from pinned memory that does not block,
so the next batch is prepared while this one travels; on a CPU, the tensors as they are.
"""

import torch


def to_device(batch, device):
    """A tensor, or a dict of tensors (a text batch), on `device`."""
    if isinstance(batch, dict):
        return {key: to_device(value, device) for key, value in batch.items()}
    if torch.device(device).type != "cuda":
        return batch.to(device)
    return batch.pin_memory().to(device, non_blocking=True)
