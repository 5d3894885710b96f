"""NVIDIA network pickles (stylegan2-ada-pytorch and stylegan3 ``.pkl``) -> GanModel, without running their code.

The pickle is read by :mod:`ganmodels.importers.safe_pickle`, which turns every persistent module into a
:class:`PersistentObject` (class name + ``__dict__``). The architecture is recognised from the module tree
(``synthesis.b4`` = StyleGAN2, ``synthesis.input`` + ``layer_names`` = StyleGAN3) and its config is read from,
in this order: per-layer attributes (``conv_clamp``, ``architecture``, ``w_avg_beta``, ``conv_kernel``,
``bandwidth`` ...), tensor shapes (channel counts, filter taps), and last the stored constructor kwargs, since the
two repositories' defaults differ (e.g. ``conv_clamp`` None vs 256, ``w_avg_beta`` 0.995 vs 0.998). The rebuilt
network is checked against the stored per-layer attributes and loaded strictly by name.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganmodels.importers.common import Component, Imported, finish, fit_channels, load_weights
from ganmodels.importers.safe_pickle import PersistentObject, load_pickle
from ganmodels.modelfile import GanModel, ModelFileError
from ganmodels.networks import DiscriminatorConfig, GeneratorConfig
from ganmodels.ops import setup_filter
from ganmodels.stylegan3 import StyleGAN3Config

_MISSING = object()
_G_ARGS = ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels", "mapping_kwargs", "synthesis_kwargs")


def _first(*values: Any) -> Any:
    """The first value that is not _MISSING (None is a real value: e.g. conv_clamp=None)."""
    for v in values:
        if v is not _MISSING:
            return v
    return None


def _attr(obj: PersistentObject | None, name: str) -> Any:
    return obj.state.get(name, _MISSING) if obj is not None else _MISSING


def _kw(d: dict[str, Any], name: str) -> Any:
    return d.get(name, _MISSING)


def _plain(v: Any) -> Any:
    """numpy scalars -> Python numbers (for JSON configs)."""
    if isinstance(v, np.generic):
        return v.item()
    return v


def _child(obj: PersistentObject, name: str, source: str) -> PersistentObject:
    c = obj.child(name)
    if c is None:
        raise ModelFileError(f"{source}: network {obj.class_name} has no submodule {name!r}")
    return c


def _weight(obj: PersistentObject, source: str) -> torch.Tensor:
    w = obj.parameters.get("weight", obj.buffers.get("weight"))
    if not isinstance(w, torch.Tensor):
        raise ModelFileError(f"{source}: {obj.class_name} has no weight tensor")
    return w


def _split_kwargs(net: PersistentObject) -> tuple[dict[str, Any], dict[str, Any]]:
    """(mapping kwargs, synthesis kwargs) of a Generator; stylegan3's repo flattens the synthesis kwargs."""
    kw = net.init_kwargs
    mkw = dict(kw.get("mapping_kwargs") or {})
    skw = dict(kw.get("synthesis_kwargs") or {})
    skw.update({k: v for k, v in kw.items() if k not in _G_ARGS})
    return mkw, skw


def _common_dims(net: PersistentObject, synthesis: PersistentObject) -> dict[str, int]:
    kw = net.init_kwargs
    out = {}
    for name in ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels"):
        v = _first(_attr(net, name), _attr(synthesis, name), _kw(kw, name))
        if v is None:
            raise ModelFileError(f"generator has no {name}")
        out[name] = int(v)
    return out


def _check_mapping(mapping: PersistentObject, dims: dict[str, int], num_layers: int, source: str) -> None:
    """Only mappings with w_dim-wide layers and a w_dim label embedding are representable."""
    z_dim, c_dim, w_dim = dims["z_dim"], dims["c_dim"], dims["w_dim"]
    embed = mapping.child("embed")
    if c_dim > 0 and (embed is None or tuple(_weight(embed, source).shape) != (w_dim, c_dim)):
        raise ModelFileError(f"{source}: unsupported label embedding (only embed_features = w_dim is supported)")
    for i in range(num_layers):
        w = _weight(_child(mapping, f"fc{i}", source), source)
        want_in = (z_dim + (w_dim if c_dim > 0 else 0)) if i == 0 else w_dim
        if tuple(w.shape) != (w_dim, want_in):
            raise ModelFileError(f"{source}: unsupported mapping layer fc{i} of shape {list(w.shape)}")


def _filter_taps(f: Any, source: str) -> tuple[int, ...]:
    """Integer taps of a normalised separable 2-D FIR filter buffer (e.g. [1, 3, 3, 1])."""
    if not isinstance(f, torch.Tensor) or f.ndim != 2:
        return (1, 3, 3, 1)
    row = f.double().sum(dim=1)
    taps = tuple(round(float(t)) for t in row / row.min())
    if not torch.allclose(setup_filter(taps), f.float(), atol=1e-6):
        raise ModelFileError(f"{source}: unsupported resampling filter {f.tolist()}")
    return taps


# --------------------------------------------------------------------------------------------------------------
# StyleGAN2


def _fp16_flags(block_res: list[int], num_fp16_res: int) -> list[bool]:
    """use_fp16 of each synthesis block for ``num_fp16_res`` (NVIDIA's rule)."""
    fp16_resolution = max(2 ** (int(math.log2(block_res[-1])) + 1 - num_fp16_res), 8)
    return [r >= fp16_resolution for r in block_res]


def stylegan2_config(net: PersistentObject, *, source: str) -> GeneratorConfig:
    """GeneratorConfig of a stylegan2-ada-pytorch (or stylegan3-repo StyleGAN2) Generator."""
    mkw, skw = _split_kwargs(net)
    mapping = _child(net, "mapping", source)
    synthesis = _child(net, "synthesis", source)
    dims = _common_dims(net, synthesis)
    res = dims["img_resolution"]
    block_res = [2**i for i in range(2, int(math.log2(res)) + 1)]
    blocks = {r: _child(synthesis, f"b{r}", source) for r in block_res}
    channels = {r: int(_weight(_child(blocks[r], "conv1", source), source).shape[0]) for r in block_res}
    conv1 = _child(blocks[4], "conv1", source)
    fp16_flags = [_attr(b, "use_fp16") for b in blocks.values()]
    num_fp16 = _MISSING
    if all(f is not _MISSING for f in fp16_flags):
        # the blocks' flags decide; the stored kwarg is kept when it gives the same flags (it is clearer)
        num_fp16 = sum(bool(f) for f in fp16_flags)
        kw_fp16 = _kw(skw, "num_fp16_res")
        if isinstance(kw_fp16, int) and _fp16_flags(block_res, kw_fp16) == [bool(f) for f in fp16_flags]:
            num_fp16 = kw_fp16
    num_layers = _first(_attr(mapping, "num_layers"), _kw(mkw, "num_layers"))
    if num_layers is None:
        num_layers = sum(1 for k in mapping.modules if k.startswith("fc"))
    num_layers = int(num_layers)
    _check_mapping(mapping, dims, num_layers, source)
    w_avg_beta = _first(_attr(mapping, "w_avg_beta"), _kw(mkw, "w_avg_beta"), 0.995)
    if w_avg_beta is None or "w_avg" not in mapping.buffers:
        raise ModelFileError(f"{source}: the mapping network tracks no w_avg (w_avg_beta=None) and cannot truncate")
    block_attrs = [_attr(b, "architecture") for b in blocks.values()]
    architecture = _first(*block_attrs, _kw(skw, "architecture"), "skip")
    base, cmax = fit_channels(
        channels,
        lambda b, m: {r: min(b // r, m) for r in block_res},
        [
            (_first(_kw(skw, "channel_base"), None), _first(_kw(skw, "channel_max"), None)),
            *((channels[r] * r, max(channels.values())) for r in block_res),
            (max(channels.values()) * res, max(channels.values())),
        ],
        source=source,
    )
    return GeneratorConfig(
        img_resolution=res,
        img_channels=dims["img_channels"],
        z_dim=dims["z_dim"],
        w_dim=dims["w_dim"],
        c_dim=dims["c_dim"],
        mapping_layers=num_layers,
        mapping_lr_multiplier=float(
            _first(_attr(_child(mapping, "fc0", source), "bias_gain"), _kw(mkw, "lr_multiplier"), 0.01)
        ),
        w_avg_beta=float(w_avg_beta),
        channel_base=base,
        channel_max=cmax,
        architecture=str(architecture),
        conv_clamp=_plain(_first(_attr(conv1, "conv_clamp"), _kw(skw, "conv_clamp"), None)),
        num_fp16_res=int(_first(_attr(synthesis, "num_fp16_res"), num_fp16, _kw(skw, "num_fp16_res"), 0)),
        use_noise=bool(_first(_attr(conv1, "use_noise"), _kw(skw, "use_noise"), True)),
        resample_filter=_filter_taps(blocks[4].buffers.get("resample_filter"), source),
    )


# --------------------------------------------------------------------------------------------------------------
# StyleGAN3


def _close(a: Any, b: Any) -> bool:
    return bool(np.allclose(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64), rtol=1e-6, atol=1e-9))


def _prefer(derived: float, *exact: Any) -> float:
    """``derived`` (from attributes), snapped to a kwargs/default value it equals up to rounding."""
    for e in exact:
        if e is not _MISSING and e is not None and _close(derived, e):
            return float(e)
    return float(derived)


def stylegan3_config(net: PersistentObject, *, source: str) -> StyleGAN3Config:
    """StyleGAN3Config of a stylegan3 Generator (config T or R), checked against every layer's attributes."""
    mkw, skw = _split_kwargs(net)
    mapping = _child(net, "mapping", source)
    synthesis = _child(net, "synthesis", source)
    inp = _child(synthesis, "input", source)
    dims = _common_dims(net, synthesis)
    res = dims["img_resolution"]
    names = list(_attr(synthesis, "layer_names") or [])
    layers = [_child(synthesis, n, source) for n in names]
    if not layers:
        raise ModelFileError(f"{source}: StyleGAN3 synthesis network without layers")
    defaults = StyleGAN3Config()
    num_layers = int(_first(_attr(synthesis, "num_layers"), _kw(skw, "num_layers"), len(layers) - 1))
    num_critical = int(_first(_attr(synthesis, "num_critical"), _kw(skw, "num_critical"), 2))
    l0, last = layers[0], layers[-1]

    # Filter size and lrelu upsampling from the first layer that resamples.
    filter_size = _kw(skw, "filter_size")
    for layer in layers:
        if not _attr(layer, "is_torgb") and int(_first(_attr(layer, "up_factor"), 1)) > 1:
            filter_size = int(layer.state["up_taps"]) // int(layer.state["up_factor"])
            break
        if not _attr(layer, "is_torgb") and int(_first(_attr(layer, "down_factor"), 1)) > 1:
            filter_size = int(layer.state["down_taps"]) // int(layer.state["down_factor"])
            break
    tmp_sr = _attr(l0, "tmp_sampling_rate")
    lrelu_up = _kw(skw, "lrelu_upsampling")
    if tmp_sr is not _MISSING:
        rate = max(float(l0.state["in_sampling_rate"]), float(l0.state["out_sampling_rate"]))
        lrelu_up = round(float(tmp_sr) / rate)
    radial_flags = [_attr(layer, "down_radial") for layer in layers]
    use_radial = any(bool(f) for f in radial_flags if f is not _MISSING) or bool(
        _first(_kw(skw, "use_radial_filters"), False)
    )

    # Stopbands are recoverable when they exceed half the sampling rate; else kwargs, else NVIDIA's defaults.
    first_stopband = _first(_kw(skw, "first_stopband"), defaults.first_stopband)
    if all(_attr(l0, k) is not _MISSING for k in ("in_half_width", "in_cutoff", "in_sampling_rate")):
        stop0 = float(l0.state["in_half_width"]) + float(l0.state["in_cutoff"])
        if stop0 > float(l0.state["in_sampling_rate"]) / 2 + 1e-9:
            first_stopband = _prefer(stop0, _kw(skw, "first_stopband"), defaults.first_stopband)
    last_rel = _first(_kw(skw, "last_stopband_rel"), defaults.last_stopband_rel)
    if all(_attr(last, k) is not _MISSING for k in ("out_half_width", "out_cutoff", "out_sampling_rate")):
        stop_n = float(last.state["out_half_width"]) + float(last.state["out_cutoff"])
        if stop_n > float(last.state["out_sampling_rate"]) / 2 + 1e-9:
            last_rel = _prefer(stop_n / (res / 2), _kw(skw, "last_stopband_rel"), defaults.last_stopband_rel)

    num_map = int(_first(_attr(mapping, "num_layers"), _kw(mkw, "num_layers"), 2))
    _check_mapping(mapping, dims, num_map, source)
    partial = dict(
        img_resolution=res,
        img_channels=dims["img_channels"],
        z_dim=dims["z_dim"],
        w_dim=dims["w_dim"],
        c_dim=dims["c_dim"],
        mapping_layers=num_map,
        mapping_lr_multiplier=float(
            _first(_attr(_child(mapping, "fc0", source), "bias_gain"), _kw(mkw, "lr_multiplier"), 0.01)
        ),
        w_avg_beta=float(_first(_attr(mapping, "w_avg_beta"), _kw(mkw, "w_avg_beta"), defaults.w_avg_beta)),
        num_layers=num_layers,
        num_critical=num_critical,
        first_cutoff=float(_first(_attr(inp, "bandwidth"), _kw(skw, "first_cutoff"), defaults.first_cutoff)),
        first_stopband=float(first_stopband),
        last_stopband_rel=float(last_rel),
        margin_size=int(_first(_attr(synthesis, "margin_size"), _kw(skw, "margin_size"), defaults.margin_size)),
        output_scale=float(_first(_attr(synthesis, "output_scale"), _kw(skw, "output_scale"), defaults.output_scale)),
        num_fp16_res=int(_first(_attr(synthesis, "num_fp16_res"), _kw(skw, "num_fp16_res"), defaults.num_fp16_res)),
        conv_kernel=int(_first(_attr(l0, "conv_kernel"), _kw(skw, "conv_kernel"), defaults.conv_kernel)),
        filter_size=int(_first(filter_size, defaults.filter_size)),
        lrelu_upsampling=int(_first(lrelu_up, defaults.lrelu_upsampling)),
        use_radial_filters=use_radial,
        conv_clamp=_plain(_first(_attr(l0, "conv_clamp"), _kw(skw, "conv_clamp"), defaults.conv_clamp)),
        magnitude_ema_beta=float(
            _first(_attr(l0, "magnitude_ema_beta"), _kw(skw, "magnitude_ema_beta"), defaults.magnitude_ema_beta)
        ),
    )

    # Channels: shapes of every layer, fitted by channel_base / channel_max.
    found = {i: int(_weight(layer, source).shape[0]) for i, layer in enumerate(layers)}
    found[-1] = int(_weight(inp, source).shape[0])

    def formula(b: float, m: float) -> dict[int, int]:
        ch = StyleGAN3Config(**partial, channel_base=int(b), channel_max=int(m)).plan()["channels"]
        return {**{i: int(c) for i, c in enumerate(ch)}, -1: int(ch[0])}

    cutoffs = StyleGAN3Config(**partial).plan()["cutoffs"]
    cmax = max(v for k, v in found.items() if k != num_layers)
    guesses = [(_first(_kw(skw, "channel_base"), None), _first(_kw(skw, "channel_max"), None))]
    for i in range(num_layers):
        est = 2 * found[i] * cutoffs[i]
        guesses += [(2 ** round(math.log2(est)), cmax), (round(est), cmax)]
    guesses.append((2 ** math.ceil(math.log2(2 * cmax * cutoffs[-1])), cmax))
    base, cmax = fit_channels(found, formula, guesses, source=source)
    config = StyleGAN3Config(**partial, channel_base=base, channel_max=cmax)

    # Check the plan against the stored per-layer attributes.
    plan = config.plan()
    expected_names = [f"L{i}_{int(plan['sizes'][i])}_{int(plan['channels'][i])}" for i in range(num_layers + 1)]
    if expected_names != names:
        raise ModelFileError(f"{source}: layer names {names} do not follow the inferred config ({expected_names})")
    for i, layer in enumerate(layers):
        prev = max(i - 1, 0)
        for attr, want in (
            ("in_sampling_rate", plan["sampling_rates"][prev]),
            ("out_sampling_rate", plan["sampling_rates"][i]),
            ("in_cutoff", plan["cutoffs"][prev]),
            ("out_cutoff", plan["cutoffs"][i]),
            ("in_half_width", plan["half_widths"][prev]),
            ("out_half_width", plan["half_widths"][i]),
        ):
            got = _attr(layer, attr)
            if got is not _MISSING and not _close(got, want):
                raise ModelFileError(f"{source}: {names[i]}.{attr} = {got} but the inferred config gives {want}")
    return config


def _check_sg3_layers(G: torch.nn.Module, net: PersistentObject, source: str) -> None:
    """Integer geometry of every rebuilt layer (factors, taps, padding, kernel) must equal the stored one."""
    synthesis = _child(net, "synthesis", source)
    for name in G.synthesis.layer_names:
        ours = getattr(G.synthesis, name)
        theirs = _child(synthesis, name, source)
        for attr in ("up_factor", "down_factor", "up_taps", "down_taps", "conv_kernel", "is_torgb", "down_radial"):
            got = _attr(theirs, attr)
            if got is not _MISSING and _plain(got) != getattr(ours, attr):
                raise ModelFileError(f"{source}: {name}.{attr} = {got}, rebuilt {getattr(ours, attr)}")
        got = _attr(theirs, "padding")
        if got is not _MISSING and [int(p) for p in got] != ours.padding:
            raise ModelFileError(f"{source}: {name}.padding = {list(got)}, rebuilt {ours.padding}")


# --------------------------------------------------------------------------------------------------------------
# Discriminator (kept as a component on conversion: it gives inversion its perceptual loss)


def discriminator_component(D: PersistentObject, *, source: str) -> Component:
    """(kind, config, state_dict) of a StyleGAN2 discriminator from a pickle."""
    from ganmodels.components import DISCRIMINATOR_KIND

    kw = D.init_kwargs
    res = int(_first(_attr(D, "img_resolution"), _kw(kw, "img_resolution")))
    block_res = [2**i for i in range(int(math.log2(res)), 2, -1)]
    blocks = {r: _child(D, f"b{r}", source) for r in block_res}
    epilogue = _child(D, "b4", source)
    channels = {r: int(_weight(_child(blocks[r], "conv0", source), source).shape[0]) for r in block_res}
    channels[4] = int(_weight(_child(epilogue, "conv", source), source).shape[0])
    mbstd = epilogue.child("mbstd")
    fp16 = [bool(_first(_attr(b, "use_fp16"), False)) for b in blocks.values()]
    base, cmax = fit_channels(
        channels,
        lambda b, m: {r: min(b // r, m) for r in [*block_res, 4]},
        [
            (_first(_kw(kw, "channel_base"), None), _first(_kw(kw, "channel_max"), None)),
            *((channels[r] * r, max(channels.values())) for r in [*block_res, 4]),
            (max(channels.values()) * res, max(channels.values())),
        ],
        source=source,
    )
    cfg = DiscriminatorConfig(
        img_resolution=res,
        img_channels=int(_first(_attr(D, "img_channels"), _kw(kw, "img_channels"), 3)),
        c_dim=int(_first(_attr(D, "c_dim"), _kw(kw, "c_dim"), 0)),
        channel_base=base,
        channel_max=cmax,
        architecture=str(_first(_attr(blocks[res], "architecture"), _kw(kw, "architecture"), "resnet")),
        conv_clamp=_plain(_first(_attr(_child(blocks[res], "conv0", source), "conv_clamp"), None)),
        num_fp16_res=sum(fp16),
        mbstd_group_size=_plain(_first(_attr(mbstd, "group_size"), 4)) if mbstd is not None else None,
        mbstd_num_channels=int(_plain(_first(_attr(mbstd, "num_channels"), 1))) if mbstd is not None else 0,
    )
    sd = D.state_dict()
    load_weights(cfg.build(), sd, source=f"{source} (discriminator)")
    return DISCRIMINATOR_KIND, cfg.to_dict(), {k: v.contiguous() for k, v in sd.items()}


# --------------------------------------------------------------------------------------------------------------


def detect_architecture(net: PersistentObject) -> str | None:
    """'stylegan2', 'stylegan3' or None for a Generator tree from a pickle."""
    synthesis = net.child("synthesis")
    if synthesis is None or net.child("mapping") is None:
        return None
    if synthesis.child("input") is not None and synthesis.attr("layer_names"):
        return "stylegan3"
    if synthesis.child("b4") is not None:
        return "stylegan2"
    return None


def _card(path: Path, data: dict[str, Any], key: str, kind: str) -> dict[str, Any]:
    card: dict[str, Any] = {
        "name": path.stem,
        "source_format": f"nvidia-{kind}-pickle",
        "source_file": path.name,
        "source_network": key,
    }
    tsk = data.get("training_set_kwargs")
    if isinstance(tsk, dict):
        if isinstance(tsk.get("path"), str):
            card["training_data"] = Path(tsk["path"]).name
        for k in ("resolution", "use_labels", "xflip", "max_size"):
            if isinstance(_plain(tsk.get(k)), (int, float, bool, str)):
                card[f"training_set_{k}"] = _plain(tsk[k])
    return card


def import_pickle(path: str | Path, *, device: torch.device | str = "cpu") -> Imported:
    """Load an NVIDIA ``.pkl`` (G_ema, else G) as a GanModel; its discriminator becomes a component if it fits."""
    path = Path(path)
    source = path.name
    data = load_pickle(path)
    if not isinstance(data, dict):
        raise ModelFileError(f"{source}: not an NVIDIA network pickle (expected a dict holding G_ema)")
    key = next((k for k in ("G_ema", "G") if isinstance(data.get(k), PersistentObject)), None)
    if key is None:
        raise ModelFileError(f"{source}: the pickle holds no G_ema or G network (keys: {sorted(map(str, data))})")
    net = data[key]
    kind = detect_architecture(net)
    if kind == "stylegan2":
        config: GeneratorConfig | StyleGAN3Config = stylegan2_config(net, source=source)
    elif kind == "stylegan3":
        config = stylegan3_config(net, source=source)
    else:
        raise ModelFileError(f"{source}: {key} is a {net.class_name} of an unknown architecture")
    G = config.build()
    if kind == "stylegan3":
        _check_sg3_layers(G, net, source)
    load_weights(G, net.state_dict(), source=source)
    notes = []
    components = {}
    if isinstance(data.get("D"), PersistentObject):
        try:
            components["discriminator"] = discriminator_component(data["D"], source=source)
        except ModelFileError as e:
            notes.append(f"discriminator not imported: {e}")
    model = GanModel(G=finish(G, device), config=config, card=_card(path, data, key, kind), path=path)
    return Imported(model=model, components=components, notes=notes)
