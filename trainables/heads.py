"""The new output layer of d2l's fine-tuning recipe, shared by every task that adds one: Xavier-
initialised weights and a zero bias, sized for the user's classes or tags.
"""

from torch import nn


def new_head(layer: nn.Linear) -> nn.Linear:
    """Initialise `layer` as a fresh head (in place) and return it."""
    nn.init.xavier_uniform_(layer.weight)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)
    return layer
