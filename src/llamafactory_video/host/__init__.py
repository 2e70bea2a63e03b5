"""The ONLY code that patches or reaches into LlamaFactory internals.

Each patch is listed in :data:`llamafactory_video.host.patches.PATCHES` with the host module it
changes; ``tests/unit/test_host_contract.py`` checks every assumption a patch makes about the host,
so a LlamaFactory upgrade that breaks one fails loudly there rather than in a user's run.
"""
