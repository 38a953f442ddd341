"""Layer-stack spec: a JSON-friendly description of a network, checked before anything is built.

A spec is a list of dicts, one per layer::

    [{"type": "Flatten"}, {"type": "Linear", "units": 128}, {"type": "ReLU"},
     {"type": "Dropout", "p": 0.2}, {"type": "Linear", "units": 10}]

and has a compact text form for the command line: ``flatten,linear:128,relu,dropout:0.2,linear:10``.
``describe`` infers each layer's output shape from the 1x28x28 input and raises ``SpecError``
naming the first layer that is wrong. Layers are numbered from 1 in messages.
"""

import math
from dataclasses import dataclass

import numpy as np

from .errors import SpecError
from .layers import Dropout, Flatten, Linear, ReLU, Sequential, Sigmoid, Softmax, Tanh

INPUT_SHAPE = (1, 28, 28)
NUM_CLASSES = 10
MAX_UNITS = 4096
MAX_LAYERS = 32

# Layer type -> (class, name of its one setting or None).
LAYER_TYPES = {
    "Flatten": (Flatten, None),
    "Linear": (Linear, "units"),
    "ReLU": (ReLU, None),
    "Tanh": (Tanh, None),
    "Sigmoid": (Sigmoid, None),
    "Softmax": (Softmax, None),
    "Dropout": (Dropout, "p"),
}
ACTIVATIONS = ("ReLU", "Tanh", "Sigmoid", "Softmax")
_BY_LOWER_NAME = {name.lower(): name for name in LAYER_TYPES}


@dataclass(frozen=True)
class LayerInfo:
    """One row of a network summary: 1-based ``index``, ``type``, ``output_shape``, ``n_params``."""

    index: int
    type: str
    output_shape: tuple
    n_params: int


def parse_spec(text):
    """Parse ``"flatten,linear:128,relu"`` into a list of layer dicts (not yet validated).

    An empty text gives an empty list, which ``describe`` reports as a network with no layers.
    """
    if not text.strip():
        return []
    layers = []
    tokens = [token.strip() for token in text.split(",")]
    for index, token in enumerate(tokens, start=1):
        name, _, value = token.partition(":")
        type_name = _BY_LOWER_NAME.get(name.strip().lower())
        if not name.strip():
            raise SpecError("spec.bad_token", index=index, token=token)
        if type_name is None:
            raise SpecError("spec.unknown_layer", index=index, name=name.strip(),
                            allowed=", ".join(_BY_LOWER_NAME))
        setting = LAYER_TYPES[type_name][1]
        layer = {"type": type_name}
        if value:
            if setting is None:
                raise SpecError("spec.unexpected_setting", index=index, name=type_name,
                                setting=value, allowed="none")
            layer[setting] = _parse_number(value.strip(), index, token)
        layers.append(layer)
    return layers


def _parse_number(text, index, token):
    try:
        number = float(text)
    except ValueError:
        raise SpecError("spec.bad_token", index=index, token=token) from None
    return int(number) if number.is_integer() and "." not in text else number


def format_spec(layers):
    """Return the compact text form of a spec, the inverse of ``parse_spec``."""
    tokens = []
    for layer in layers:
        setting = LAYER_TYPES[layer["type"]][1]
        token = layer["type"].lower()
        if setting is not None:
            token += f":{layer[setting]}"
        tokens.append(token)
    return ",".join(tokens)


def describe(layers, input_shape=INPUT_SHAPE):
    """Validate a spec and return a ``LayerInfo`` per layer.

    Raises ``SpecError`` naming the first invalid layer. The checks are: a known type, no
    missing or unexpected setting, units in 1..4096, a dropout rate in [0, 1), a flat input for
    every Linear layer, and 10 output values.
    """
    if not isinstance(layers, (list, tuple)):
        raise SpecError("spec.not_a_list", got=type(layers).__name__)
    if not layers:
        raise SpecError("spec.empty")
    if len(layers) > MAX_LAYERS:
        raise SpecError("spec.too_many_layers", count=len(layers), max=MAX_LAYERS)

    infos = []
    shape = tuple(input_shape)
    for index, layer in enumerate(layers, start=1):
        type_name = _check_layer(index, layer)
        n_params = 0
        if type_name == "Flatten":
            shape = (math.prod(shape),)
        elif type_name == "Linear":
            if len(shape) != 1:
                raise SpecError("spec.needs_flat_input", index=index, shape=format_shape(shape))
            units = layer["units"]
            n_params = shape[0] * units + units
            shape = (units,)
        infos.append(LayerInfo(index, type_name, shape, n_params))

    if shape != (NUM_CLASSES,):
        raise SpecError("spec.wrong_output", shape=format_shape(shape))
    return infos


def _check_layer(index, layer):
    """Check one layer dict and return its type name."""
    if not isinstance(layer, dict) or "type" not in layer:
        raise SpecError("spec.bad_token", index=index, token=str(layer))
    type_name = _BY_LOWER_NAME.get(str(layer["type"]).lower())
    if type_name is None:
        raise SpecError("spec.unknown_layer", index=index, name=layer["type"],
                        allowed=", ".join(LAYER_TYPES))

    setting = LAYER_TYPES[type_name][1]
    for key in layer:
        if key != "type" and key != setting:
            raise SpecError("spec.unexpected_setting", index=index, name=type_name, setting=key,
                            allowed=setting or "none")

    if type_name == "Linear":
        if "units" not in layer:
            raise SpecError("spec.missing_setting", index=index, name=type_name, setting="units")
        units = layer["units"]
        if isinstance(units, bool) or not isinstance(units, (int, np.integer)) \
                or not 1 <= units <= MAX_UNITS:
            raise SpecError("spec.bad_units", index=index, max=MAX_UNITS, value=units)
    if type_name == "Dropout":
        if "p" not in layer:
            raise SpecError("spec.missing_setting", index=index, name=type_name, setting="p")
        p = layer["p"]
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p < 1:
            raise SpecError("spec.bad_dropout", index=index, value=p)
    return type_name


def format_shape(shape):
    """Return a shape as the app shows it, such as ``1x28x28``."""
    return "x".join(str(size) for size in shape)


def build_model(layers, rng=None):
    """Validate ``layers`` and build the ``Sequential`` network.

    Each Linear layer is initialised for the activation that follows it (skipping Dropout):
    He init before ReLU, Xavier before Tanh, Sigmoid or Softmax and for the output layer.

    Args:
        rng: ``numpy.random.Generator`` for initial weights and dropout masks; seeding it makes
            the network reproducible. Default: a fresh unseeded generator.
    """
    infos = describe(layers)
    rng = rng if rng is not None else np.random.default_rng()
    init_rng, dropout_rng = rng.spawn(2)

    modules = []
    shape = INPUT_SHAPE
    for position, (layer, info) in enumerate(zip(layers, infos)):
        if info.type == "Linear":
            init = "he" if _next_activation(layers, position) == "ReLU" else "xavier"
            modules.append(Linear(shape[0], layer["units"], init=init, rng=init_rng))
        elif info.type == "Dropout":
            modules.append(Dropout(float(layer["p"]), rng=dropout_rng))
        else:
            modules.append(LAYER_TYPES[info.type][0]())
        shape = info.output_shape
    return Sequential(*modules)


def _next_activation(layers, position):
    """Return the type of the first activation after ``position``, skipping Dropout, or None."""
    for layer in layers[position + 1:]:
        type_name = _BY_LOWER_NAME[str(layer["type"]).lower()]
        if type_name in ACTIVATIONS:
            return type_name
        if type_name != "Dropout":
            return None
    return None


def normalise(layers):
    """Return a copy of a valid spec with canonical type names and plain Python numbers."""
    describe(layers)
    result = []
    for layer in layers:
        type_name = _BY_LOWER_NAME[str(layer["type"]).lower()]
        entry = {"type": type_name}
        setting = LAYER_TYPES[type_name][1]
        if setting == "units":
            entry["units"] = int(layer["units"])
        elif setting == "p":
            entry["p"] = float(layer["p"])
        result.append(entry)
    return result
