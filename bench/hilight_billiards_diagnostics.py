#!/usr/bin/env python
"""Where the HiLight billiards demo loses the pocketed ball (tiny, CPU, in-process; the CLI demo is
``scripts/hilight_demo.py``). On one synthetic billiards split ("Which ball was pocketed?") and a HiLight built from
the hand-initialised colour towers (``llamafactory_video.testing.billiards_towers``) and a random tiny Qwen2 LM:

1. ``probe``: a softmax regression on the frozen frame-tower embeddings (first frame minus last frame; all frames
   concatenated): is the answer in the towers' output?
2. ``token_mining``: a fresh TokenMining (variant ``b``) + a linear head trained on its tokens, read as the mean over
   frames (what uniform LLM attention sees) or the last frame's token: can TokenMining extract it?
3. ``llm``: the whole HiLight, TokenMining trained with the LLM under ``--llm-finetuning``: ``lora`` (LoRA +
   ``lm_head``, as stage 2 with ``additional_target: token_mining,lm_head``), ``frozen`` (only ``lm_head``) or
   ``full`` (as the demo's stage 2); greedy first answer token (read as the colour whose first token it is; "pink"
   is two tokens): does it get through a random tiny LLM drawn with std ``--llm-init``?

Each accuracy is on held-out videos, next to chance (uniform among the balls on the table). No assertions.

    python bench/hilight_billiards_diagnostics.py [--seed 0] [--train 300] [--test 80] [--steps 800] [--lr 1e-2]
        [--llm-finetuning lora|frozen|full] [--llm-init 0.02] [--batch 8] [--skip-probes]
        [--output bench/results/hilight_billiards_diagnostics.json]
"""

import argparse
import datetime
import json
import os
import platform
import sys
import tempfile
import time

import av
import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "src"))

NUM_FRAMES = 6


def softmax_regression(xa, ya, xb, yb, classes, steps=1500, lr=1e-2):
    m, sd = xa.mean(0), xa.std(0) + 1e-6
    a, b = (xa - m) / sd, (xb - m) / sd
    ta = torch.tensor([classes.index(c) for c in ya])
    lin = torch.nn.Linear(a.shape[1], len(classes))
    opt = torch.optim.Adam(lin.parameters(), lr)
    for _ in range(steps):
        loss = torch.nn.functional.cross_entropy(lin(a), ta) + 1e-3 * lin.weight.pow(2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    pred = lin(b).argmax(1).tolist()
    return float(np.mean([classes[p] == c for p, c in zip(pred, yb)]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train", type=int, default=300)
    parser.add_argument("--test", type=int, default=80)
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--llm-finetuning", choices=["lora", "frozen", "full"], default="lora")
    parser.add_argument("--llm-init", type=float, default=0.02, help="std of the tiny LLM's random weights")
    parser.add_argument("--llm-lr", type=float, default=None, help="lr of step 3 (default: --lr)")
    parser.add_argument("--batch", type=int, default=8, help="batch of step 3")
    parser.add_argument("--skip-probes", action="store_true", help="only step 3")
    parser.add_argument("--output", default=os.path.join(HERE, "results", "hilight_billiards_diagnostics.json"))
    args = parser.parse_args()
    os.environ.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    from peft import LoraConfig, get_peft_model

    from llamafactory_video.host.hilight import register_transformers
    from llamafactory_video.model.hilight import HiLightForConditionalGeneration, HiLightProcessor
    from llamafactory_video.model.hilight.token_mining import TokenMining
    from llamafactory_video.testing.billiards_towers import build_colour_tower
    from llamafactory_video.testing.synthetic_billiards import make_billiards_dataset, score_answers
    from llamafactory_video.testing.tiny_hilight import build_tiny_qwen2_lm
    from llamafactory_video.tools.hilight_build import build_hilight

    register_transformers()
    torch.manual_seed(args.seed)
    tmp = tempfile.mkdtemp()
    vt = build_colour_tower(os.path.join(tmp, "vt"), "video")
    ft = build_colour_tower(os.path.join(tmp, "ft"), "frame")
    llm = build_tiny_qwen2_lm(
        os.path.join(tmp, "llm"), seed=args.seed, hidden_size=64, initializer_range=args.llm_init
    )
    build_hilight(vt, ft, llm, os.path.join(tmp, "hl"), token_mining="b", num_frames=NUM_FRAMES, token_mining_heads=2)
    data = os.path.join(tmp, "data")
    make_billiards_dataset(data, num_train=args.train, num_test=args.test, seed=args.seed, questions=["ball"])
    model = HiLightForConditionalGeneration.from_pretrained(os.path.join(tmp, "hl")).eval()
    proc = HiLightProcessor.from_pretrained(os.path.join(tmp, "hl"))

    def load(split):
        rows = json.load(open(os.path.join(data, f"billiards_qa_{split}.json"), encoding="utf-8"))
        videos = []
        for r in rows:
            with av.open(os.path.join(data, r["videos"][0])) as c:
                videos.append([f.to_image() for f in c.decode(video=0)])
        inputs = proc.video_inputs(videos)
        with torch.no_grad():
            fe = model.get_frame_embeddings(inputs["frame_pixel_values"])
            tokens = model.get_video_tokens(inputs["pixel_values_videos"])
        return inputs, fe, tokens, [r["messages"][1]["content"] for r in rows]

    tra_in, fa, va, ya = load("train")
    teb_in, fb, vb, yb = load("test")
    clips = json.load(open(os.path.join(data, "billiards_qa_test_clips.json"), encoding="utf-8"))
    chance = float(np.mean([1.0 / len(c["colours"]) for c in clips]))
    classes = sorted(set(ya) | set(yb))
    result = dict(chance=chance, majority=max(yb.count(c) for c in set(yb)) / len(yb))
    probes = not args.skip_probes
    result["probe"] = {} if not probes else {
        "first_minus_last_frame": softmax_regression(fa[:, 0] - fa[:, -1], ya, fb[:, 0] - fb[:, -1], yb, classes),
        "all_frames": softmax_regression(fa.flatten(1), ya, fb.flatten(1), yb, classes),
    }
    print(result, flush=True)

    ta = torch.tensor([classes.index(c) for c in ya])
    tb = torch.tensor([classes.index(c) for c in yb])
    result["token_mining"] = {}
    for readout in ("mean", "last") if probes else ():
        torch.manual_seed(args.seed)
        tm = TokenMining(va.shape[-1], fa.shape[-1], 64, "b", 2)
        head = torch.nn.Linear(64, len(classes))
        opt = torch.optim.Adam([*tm.parameters(), *head.parameters()], args.lr)
        pool = (lambda z: z.mean(1)) if readout == "mean" else (lambda z: z[:, -1])
        for _ in range(args.steps):
            idx = torch.randint(0, len(ya), (16,))
            loss = torch.nn.functional.cross_entropy(head(pool(tm(va[idx], fa[idx]))), ta[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            result["token_mining"][readout] = float((head(pool(tm(vb, fb))).argmax(1) == tb).float().mean())
        print(result, flush=True)

    tok = proc.tokenizer
    user = f"{proc.video_token * NUM_FRAMES}Which ball was pocketed?"
    prompt = tok(f"<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n", add_special_tokens=False).input_ids
    answer = {c: tok(c + "<|im_end|>", add_special_tokens=False).input_ids for c in classes}
    lora = LoraConfig(
        r=8,
        lora_alpha=16,
        target_modules=r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)",
        modules_to_save=["token_mining", "lm_head"],
    )
    torch.manual_seed(args.seed)
    if args.llm_finetuning == "lora":
        peft_model = get_peft_model(model, lora)
    else:
        peft_model = model
        for name, p in model.named_parameters():
            p.requires_grad_(
                name.startswith("token_mining.")
                or (name.startswith("language_model.") and args.llm_finetuning == "full")
                or name.startswith("language_model.lm_head.")
            )
    opt = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], args.llm_lr or args.lr)
    start = time.time()
    peft_model.train()
    for _ in range(args.steps):
        idx = torch.randint(0, len(ya), (args.batch,)).tolist()
        ids = [prompt + answer[ya[i]] for i in idx]
        width = max(map(len, ids))
        inp = torch.full((len(ids), width), tok.pad_token_id)
        lab = torch.full((len(ids), width), -100)
        mask = torch.zeros(len(ids), width, dtype=torch.long)
        for j, s in enumerate(ids):
            inp[j, : len(s)] = torch.tensor(s)
            mask[j, : len(s)] = 1
            lab[j, len(prompt) : len(s)] = torch.tensor(s[len(prompt) :])
        loss = peft_model(
            input_ids=inp,
            attention_mask=mask,
            labels=lab,
            pixel_values_videos=tra_in["pixel_values_videos"][idx],
            frame_pixel_values=tra_in["frame_pixel_values"][idx],
        ).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    peft_model.eval()
    with torch.no_grad():
        logits = peft_model(
            input_ids=torch.tensor([prompt] * len(yb)),
            pixel_values_videos=teb_in["pixel_values_videos"],
            frame_pixel_values=teb_in["frame_pixel_values"],
        ).logits[:, -1]
    first_token = {answer[c][0]: c for c in classes}
    preds = [first_token.get(int(i), tok.decode([int(i)])) for i in logits.argmax(-1)]
    result["llm"] = dict(
        accuracy=score_answers(preds, yb, ["ball"] * len(yb))["accuracy"],
        distinct_predictions=len(set(preds)),
        final_loss=float(loss),
        seconds=time.time() - start,
    )
    result.update(
        command="python bench/hilight_billiards_diagnostics.py " + " ".join(sys.argv[1:]),
        date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        machine=f"{platform.machine()} {os.cpu_count()} CPUs (shared)",
        settings=dict(vars(args), output=os.path.relpath(args.output, os.path.dirname(HERE))),
    )
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
