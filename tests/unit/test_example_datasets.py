"""Every dataset an example YAML names is registered in data/dataset_info.json or documented as user-provided.

Convention (data/README.md): a dataset the repository does not register (a converter or a demo script writes
it, or the user brings it) is named in a comment line of the YAML itself:

    # user-provided dataset: NAME[, NAME...] (where it comes from)
"""

import glob
import json
import os
import re

import pytest
import yaml


ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLES = sorted(glob.glob(os.path.join(ROOT, "examples", "**", "*.yaml"), recursive=True))
USER_PROVIDED = re.compile(r"^#\s*user-provided dataset:\s*([\w.\-]+(?:\s*,\s*[\w.\-]+)*)", re.MULTILINE)


def _registered() -> dict:
    with open(os.path.join(ROOT, "data", "dataset_info.json"), encoding="utf-8") as f:
        return json.load(f)


def _named_datasets(config: dict) -> list[str]:
    names = []
    for key in ("dataset", "eval_dataset"):
        value = config.get(key) or ""
        names += [name.strip() for name in str(value).split(",") if name.strip()]
    return names


def user_provided(text: str) -> set[str]:
    return {name.strip() for match in USER_PROVIDED.finditer(text) for name in match.group(1).split(",")}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: os.path.relpath(p, ROOT))
def test_every_example_dataset_is_registered_or_documented(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    config = yaml.safe_load(text)
    registered, documented = _registered(), user_provided(text)
    # data/dataset_info.json only counts for YAMLs that read it (dataset_dir: data, the host's default)
    in_repo_registry = config.get("dataset_dir", "data") == "data"
    for name in _named_datasets(config):
        if in_repo_registry and name in registered:
            assert name not in documented, (
                f"{path}: `{name}` is registered in data/dataset_info.json: drop the comment"
            )
            continue
        where = "data/dataset_info.json" if in_repo_registry else f"dataset_dir `{config['dataset_dir']}`"
        assert name in documented, (
            f"{os.path.relpath(path, ROOT)} names dataset `{name}`, which the repository does not register for "
            f"{where}: register it in data/dataset_info.json or add the line "
            f"`# user-provided dataset: {name} (where it comes from)`"
        )
    unused = documented - set(_named_datasets(config))
    assert not unused, f"{path}: `# user-provided dataset:` names {sorted(unused)}, which the YAML does not use"


def test_the_user_provided_convention_is_read_as_documented():
    text = "# intro\n# user-provided dataset: a_b, c-d (made by x.py)\ndataset: a_b\n#   user-provided dataset: e\n"
    assert user_provided(text) == {"a_b", "c-d", "e"}
    assert user_provided("dataset: x  # user-provided dataset: x\n") == set()  # a whole comment line only


def test_registered_entries_parse_with_the_host():
    r"""Each entry of data/dataset_info.json (laion_subset_sft included) is one LlamaFactory reads."""
    from llamafactory.data.parser import get_dataset_list

    names = list(_registered())
    assert "laion_subset_sft" in names
    attrs = get_dataset_list(names, os.path.join(ROOT, "data"))
    by_name = dict(zip(names, attrs))
    laion = by_name["laion_subset_sft"]
    assert laion.formatting == "sharegpt" and laion.messages == "messages" and laion.images == "images"
    assert laion.role_tag == "role" and laion.user_tag == "user"
