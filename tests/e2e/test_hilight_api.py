"""HiLight behind the stock OpenAI-style API (docs/models/hilight.md, "Serving"): the app ``llamafactory-cli api``
serves (``llamafactory.api.app.create_app`` around a ``ChatModel``), built in-process on a tiny HiLight, answers a
``POST /v1/chat/completions`` whose user message has a ``text`` and a ``video_url`` part (a local MP4, and the same
file as a base64 data URL), and the video reaches the model: its ``<video>`` becomes ``num_frames`` placeholder
tokens in the prompt, which the model can only run with the frames' pixels."""

import base64
import os

import pytest

from .helpers import HILIGHT_NUM_FRAMES as NUM_FRAMES


pytestmark = pytest.mark.e2e

QUESTION = "Describe this video in one sentence."


@pytest.fixture(scope="module")
def api(tiny_hilight, tmp_path_factory):
    from fastapi.testclient import TestClient
    from llamafactory.api.app import create_app
    from llamafactory.chat import ChatModel

    from llamafactory_video.testing.synthetic_videos import make_caption_dataset

    root = tmp_path_factory.mktemp("hilight_api")
    data = make_caption_dataset(
        str(root / "media"), num_classes=1, train_per_class=1, test_per_class=1, size=32, num_frames=8, formats=["mp4"]
    )
    video = os.path.join(data["output_dir"], "videos", "synth_caption_test_0000.mp4")
    chat_model = ChatModel(
        dict(
            model_name_or_path=tiny_hilight,
            template="hilight_qwen",
            max_new_tokens=4,
            do_sample=False,
            video_fps=4.0,
            video_maxlen=NUM_FRAMES,
        )
    )
    # Without `with`, the app's lifespan (a GPU-memory sweeper task) is not started: nothing outlives a request.
    return {"client": TestClient(create_app(chat_model)), "video": video, "media": data["output_dir"]}


def _complete(client, content) -> dict:
    request = {"model": "hilight", "messages": [{"role": "user", "content": content}], "max_tokens": 4}
    reply = client.post("/v1/chat/completions", json=request)
    assert reply.status_code == 200, reply.text
    return reply.json()


def test_chat_completion_with_a_video_url(api, monkeypatch):
    import llamafactory.api.common as api_common

    # `llamafactory-cli api` reads local files only under SAFE_MEDIA_PATH (an environment variable, read when the
    # module is imported): point it at the media folder, as a server would be started with SAFE_MEDIA_PATH=...
    monkeypatch.setattr(api_common, "SAFE_MEDIA_PATH", api["media"])
    with open(api["video"], "rb") as f:
        data_url = "data:video/mp4;base64," + base64.b64encode(f.read()).decode()

    text_only = _complete(api["client"], QUESTION)
    answers = []
    for url in (api["video"], data_url):
        content = [{"type": "video_url", "video_url": {"url": url}}, {"type": "text", "text": QUESTION}]
        reply = _complete(api["client"], content)
        answer = reply["choices"][0]["message"]["content"]
        assert isinstance(answer, str) and answer.strip(), reply
        assert reply["usage"]["completion_tokens"] > 0
        # the part became `<video>`, expanded by the hilight mm_plugin to num_frames tokens (fed by the pixels)
        assert reply["usage"]["prompt_tokens"] - text_only["usage"]["prompt_tokens"] == NUM_FRAMES, reply["usage"]
        answers.append(answer)
    assert answers[0] == answers[1]  # greedy: the file and its base64 copy decode to the same frames
