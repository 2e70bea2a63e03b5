"""Two "nodes" on loopback: two stock ``llamafactory-cli train`` launchers (NNODES=2, NODE_RANK=0/1,
MASTER_ADDR=127.0.0.1, NPROC_PER_NODE=1, FORCE_TORCHRUN=1) train action_cls together; rank 0 writes the head
once and it reloads. See docs/multinode.md."""

import os
import signal
import socket
import subprocess
import time

import pytest
import yaml

from .helpers import CLI, action_cls_config, offline_env, read_jsonl, run_cli, signal_group


pytestmark = pytest.mark.e2e


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_nodes_on_loopback_train_save_once_and_reload(tiny_qwen25vl, action_data, tmp_path):
    port = str(_free_port())
    node_dirs = [str(tmp_path / f"node{rank}") for rank in range(2)]
    shared_out = str(tmp_path / "shared_out")  # one output_dir on the "shared filesystem"
    procs = []
    for rank, workdir in enumerate(node_dirs):
        os.makedirs(workdir)
        config = action_cls_config(
            tiny_qwen25vl,
            action_data["output_dir"],
            shared_out,
            max_steps=3,
            save_steps=3,
            logging_steps=1,
            do_eval=False,
            do_predict=False,
            per_device_train_batch_size=2,
            preprocessing_num_workers=1,
            plot_loss=False,
        )
        path = os.path.join(workdir, "train.yaml")
        with open(path, "w", encoding="utf-8") as f:
            yaml.safe_dump(config, f)
        env = offline_env(
            FORCE_TORCHRUN="1",
            NNODES="2",
            NODE_RANK=str(rank),
            NPROC_PER_NODE="1",
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=port,
        )
        log = open(os.path.join(workdir, "train.log"), "w", encoding="utf-8")
        procs.append((
            subprocess.Popen(
                [CLI, "train", path], env=env, cwd=workdir, stdout=log, stderr=log, start_new_session=True
            ),
            log,
        ))
    codes = []
    deadline = time.monotonic() + 600
    try:
        for proc, _ in procs:
            try:
                codes.append(proc.wait(timeout=max(1.0, deadline - time.monotonic())))
            except subprocess.TimeoutExpired:
                codes.append(124)
    finally:
        for proc, log in procs:  # a node left waiting for its peer (or anything it started) must not outlive us
            if proc.poll() is None:
                signal_group(proc.pid, signal.SIGABRT)  # its Python processes print their stacks into the log
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    pass
            signal_group(proc.pid, signal.SIGKILL)
            proc.wait()
            log.close()
    logs = [open(os.path.join(d, "train.log"), encoding="utf-8").read() for d in node_dirs]
    assert codes == [0, 0], "\n\n".join(text[-3000:] for text in logs)
    assert "Multi-node training enabled: num nodes: 2, node rank: 0" in logs[0]
    assert "world size: 2" in logs[0]
    # the head is written by global rank 0 only (node 0): one save per save point, in the shared output_dir
    assert logs[0].count(f"Saving model checkpoint to {shared_out}/checkpoint-3") == 1
    assert "Saving model checkpoint to" not in logs[1]
    for where in (shared_out, os.path.join(shared_out, "checkpoint-3")):
        assert os.path.isfile(os.path.join(where, "action_decoder.safetensors"))
    losses = [row["loss"] for row in read_jsonl(os.path.join(shared_out, "trainer_log.jsonl")) if "loss" in row]
    assert len(losses) == 3

    # the saved head reloads (single process predict from the adapter + head)
    reload_out = str(tmp_path / "reload")
    reload = action_cls_config(
        tiny_qwen25vl,
        action_data["output_dir"],
        reload_out,
        do_train=False,
        do_eval=False,
        do_predict=True,
        adapter_name_or_path=shared_out,
        action_decoder_path=shared_out,
        preprocessing_num_workers=1,
    )
    run_cli(reload, str(tmp_path), "reload")
    assert len(read_jsonl(os.path.join(reload_out, "action_predictions.jsonl"))) == action_data["num_test"]
