"""TEST-ONLY (put on PYTHONPATH by tests/e2e/test_fsdp_cli.py; never installed): let accelerate run FSDP on CPU.

accelerate 1.11 (``accelerate/state.py``, ``AcceleratorState.__init__``) sets ``DistributedType.FSDP`` only when the
distributed type is an accelerator one (MULTI_GPU / NPU / XPU / HPU / MLU / SDAA / MUSA); on CPU (MULTI_CPU, gloo) a
given ``fsdp_plugin`` is dropped and the run is plain DDP. torch itself shards on CPU with gloo (FSDP1 and FSDP2), so
this shim makes accelerate take the decision it takes on a GPU machine: the Trainer's FSDP paths (wrapping, full
state dict gather at save, ``save_fsdp_model`` / ``load_fsdp_model`` at resume) then run for real on CPU.
"""

import os


if os.environ.get("LFV_TEST_CPU_FSDP") == "1":
    import accelerate.state as _state

    _init = _state.AcceleratorState.__init__

    def _accelerator_state_init(self, *args, fsdp_plugin=None, **kwargs):
        _init(self, *args, fsdp_plugin=fsdp_plugin, **kwargs)
        if fsdp_plugin is not None and self.distributed_type == _state.DistributedType.MULTI_CPU:
            self.distributed_type = _state.DistributedType.FSDP
            self.fsdp_plugin = fsdp_plugin
            # later AcceleratorState() calls copy PartialState's fields over their own
            _state.PartialState._shared_state["distributed_type"] = _state.DistributedType.FSDP

    _state.AcceleratorState.__init__ = _accelerator_state_init
