#!/usr/bin/env python3
"""Cross-check the tracr checkpoints in data/tracr against TransformerLens.

    ~/peers/bin/python tests/check_tracr_with_transformer_lens.py [--replay-acdc-rng]

For each data/tracr/NAME (and each task file with a tests/fixtures/tracr/*-expected.json)
it builds a TransformerLens model from config.json, loads model.safetensors, runs every
clean and corrupted input, and asserts the logits at every position equal the fixture's
(tracr's own forward) to 1e-5; it also recomputes the l2 metric from TL's logits.

Which TransformerLens:
* If `transformer_lens.HookedTransformer` imports (TL < 4, e.g. ACDC's pinned 1.6.1), it is
  built exactly as ACDC does (acdc/tracr_task/utils.py:80-98 and :167: use_attn_result,
  use_split_qkv_input, load_state_dict(strict=False)).
* TL 4.x removed HookedTransformer; there the same checkpoint is converted with TL's own
  transformer_lens.utilities.tl_checkpoint_conversion.convert_tl_checkpoint and loaded into
  TransformerBridge.boot_native(TransformerBridgeConfig(...)) with strict=True.
  Set TL_FORCE_BRIDGE=1 to use this path even when HookedTransformer is importable.

--replay-acdc-rng (needs HookedTransformer): re-derive ACDC's random example choices
(torch.manual_seed(1234) as acdc/main.py:192, HookedTransformer(cfg) weight init, then
get_perm(6) or randperm(256), randperm(50)) and assert the task files use them.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys

import torch
from safetensors.torch import load_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIELDS = ["n_layers", "d_model", "d_head", "n_heads", "d_mlp", "d_vocab", "d_vocab_out",
          "n_ctx", "act_fn", "normalization_type", "attention_dir",
          "positional_embedding_type", "original_architecture"]
TOL = 1e-5


def legacy_tl():
    if os.environ.get("TL_FORCE_BRIDGE") == "1":
        return None
    try:
        from transformer_lens import HookedTransformer, HookedTransformerConfig
        return HookedTransformer, HookedTransformerConfig
    except ImportError:
        return None


def hooked_cfg(HookedTransformerConfig, cfg):
    kw = {k: cfg[k] for k in FIELDS}
    return HookedTransformerConfig(**kw, use_attn_result=True, use_split_qkv_input=True,
                                   device="cpu", dtype=torch.float32)


def build_model(cfg, sd):
    """Returns (forward(ids [B,P] long) -> logits [B,P,d_vocab_out] float64, description)."""
    import transformer_lens
    version = getattr(transformer_lens, "__version__", None)
    if version is None:
        try:
            from importlib.metadata import version as _v
            version = _v("transformer-lens")
        except Exception:
            version = "?"
    legacy = legacy_tl()
    if legacy is not None:
        HookedTransformer, HookedTransformerConfig = legacy
        model = HookedTransformer(hooked_cfg(HookedTransformerConfig, cfg))
        res = model.load_state_dict(sd, strict=False)  # as ACDC, utils.py:167
        missing = [k for k in res.missing_keys if not k.endswith((".mask", ".IGNORE"))]
        assert not missing and not res.unexpected_keys, (missing, res.unexpected_keys)
        model.eval()
        desc = f"transformer_lens {version} HookedTransformer ({transformer_lens.__file__})"
        return (lambda ids: model(ids).double()), desc
    from transformer_lens import TransformerBridge, TransformerBridgeConfig
    from transformer_lens.utilities.tl_checkpoint_conversion import convert_tl_checkpoint
    bcfg = TransformerBridgeConfig(**{k: cfg[k] for k in FIELDS if k != "original_architecture"},
                                   architecture="TransformerLensNative")
    bridge = TransformerBridge.boot_native(bcfg, device="cpu", dtype=torch.float32)
    res = bridge.load_state_dict(convert_tl_checkpoint(sd, bcfg), strict=True)
    assert not res.missing_keys and not res.unexpected_keys
    bridge.eval()
    desc = f"transformer_lens {version} TransformerBridge.boot_native + convert_tl_checkpoint"
    return (lambda ids: bridge(ids, return_type="logits").double()), desc


def l2(clean, corr, outputs):
    c, r = clean[1:], corr[1:]
    if outputs is not None:
        c, r = c[:, outputs], r[:, outputs]
    return float(((r - c) ** 2).mean())


def replay_acdc_rng(cfg, name):
    HookedTransformer, HookedTransformerConfig = legacy_tl()
    torch.manual_seed(1234)  # acdc/main.py:167,192
    HookedTransformer(hooked_cfg(HookedTransformerConfig, cfg))  # utils.py:96 (CPU init)
    if name == "reverse":  # get_perm, utils.py:234-240
        perm = torch.randperm(6)
        while (perm == torch.arange(6)).any().item():
            perm = torch.randperm(6)
        return {"patch": perm.tolist()}
    p1, p2 = torch.randperm(256), torch.randperm(50)  # utils.py:332, 336
    return {"perm1": p1[:100].tolist(), "patch": p2.tolist()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--replay-acdc-rng", action="store_true")
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    overall = 0.0
    for name in ("reverse", "proportion"):
        d = os.path.join(ROOT, "data", "tracr", name)
        with open(os.path.join(d, "config.json")) as f:
            cfg = json.load(f)
        sd = load_file(os.path.join(d, "model.safetensors"))
        assert all(v.dtype == torch.float32 for v in sd.values())
        forward, desc = build_model(cfg, sd)
        print(f"[{name}] {desc}")
        fixtures = [f for f in sorted(os.listdir(os.path.join(ROOT, "tests", "fixtures", "tracr")))
                    if f.startswith(name) and f.endswith("-expected.json")]
        assert fixtures, name
        for fx in fixtures:
            with open(os.path.join(ROOT, "tests", "fixtures", "tracr", fx)) as f:
                exp = json.load(f)
            with open(os.path.join(ROOT, exp["task_file"])) as f:
                task = [json.loads(line) for line in f if line.strip()]
            assert len(task) == exp["n_examples"]
            maxdiff, l2s = 0.0, []
            for t, e in zip(task, exp["examples"]):
                assert t["clean"] == e["clean"] and t["corrupted"] == e["corrupted"]
                assert len(t["clean"]) == len(t["corrupted"])
                out = {}
                for which in ("clean", "corrupted"):
                    lg = forward(torch.tensor([t[which]], dtype=torch.long))[0]
                    ref = torch.tensor(e[f"{which}_logits"], dtype=torch.float64)
                    assert lg.shape == ref.shape, (lg.shape, ref.shape)
                    maxdiff = max(maxdiff, float((lg - ref).abs().max()))
                    out[which] = lg
                l2s.append(l2(out["clean"], out["corrupted"], t.get("outputs")))
            l2_mean = sum(l2s) / len(l2s)
            print(f"  {exp['task_file']}: {len(task)} examples, max |logit diff| = {maxdiff:.3e}, "
                  f"l2 TL {l2_mean:.8g} vs fixture {exp['l2_mean']:.8g}")
            assert maxdiff <= TOL, (fx, maxdiff)
            assert abs(l2_mean - exp["l2_mean"]) <= 1e-5, (l2_mean, exp["l2_mean"])
            overall = max(overall, maxdiff)
        if args.replay_acdc_rng:
            assert legacy_tl() is not None, "--replay-acdc-rng needs a HookedTransformer (TL < 4)"
            r = replay_acdc_rng(cfg, name)
            with open(os.path.join(d, "task.jsonl")) as f:
                task = [json.loads(line) for line in f if line.strip()]
            if name == "reverse":
                data = [[3] + list(p) for p in itertools.permutations([0, 1, 2])]
                assert [t["clean"] for t in task] == data
                assert [t["corrupted"] for t in task] == [data[i] for i in r["patch"]]
            else:
                things = list(itertools.product("wxyz", repeat=4))
                data = [[ord(c) - ord("w") for c in things[j]] for j in r["perm1"]]
                assert [t["clean"] for t in task] == data[:50]
                assert [t["corrupted"] for t in task] == [data[i] for i in r["patch"]]
            print(f"  ACDC RNG replay (seed 1234, torch {torch.__version__}) matches task.jsonl")
    print(f"OK: max |logit diff| over all checkpoints and tasks = {overall:.3e} (tol {TOL})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
