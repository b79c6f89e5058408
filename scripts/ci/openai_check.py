#!/usr/bin/env python3
"""Calls a running `wuerstchen serve` through the official openai SDK, unchanged, and checks the answers.

    python scripts/ci/openai_check.py http://127.0.0.1:8080/v1 [--api-key KEY] [--size 128x128]

Checks, through `client.images.generate` as an application calls it: the non-stream answer (a valid PNG of
the requested size, `usage`, the settings); `stream=True, partial_images=2, output_format="jpeg"`, whose
events the SDK parses into its own pydantic types (ImageGenPartialImageEvent, ImageGenCompletedEvent):
two partials with indices 0 and 1, then one completed event with usage, every image a JPEG of the size;
and the SDK's error path (`response_format="url"`: BadRequestError naming the field; an unknown model:
NotFoundError with code model_not_found). Exits 0 and prints `ok WIDTHxHEIGHT ...`, or 1 with the reason.
Needs the openai version pinned in openai_venv.sh (scripts/test.sh makes the virtualenv).
"""
import argparse
import base64
import sys

import openai

from openai.types import ImageGenCompletedEvent, ImageGenPartialImageEvent, ImagesResponse

from png_check import jpeg_size, png_size


def fail(message: str) -> int:
    print(f"FAIL: {message}", file=sys.stderr)
    return 1


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("base_url")
    parser.add_argument("--api-key", default="unused")
    parser.add_argument("--size", default="128x128")
    parser.add_argument("--model", default="wuerstchen-v2")
    args = parser.parse_args()

    client = openai.OpenAI(base_url=args.base_url, api_key=args.api_key, max_retries=0, timeout=300)
    response = client.images.generate(
        model=args.model, prompt="a photo of a cat", size=args.size, response_format="b64_json", n=1,
        extra_body={"prior_steps": 2, "decoder_steps": 2},
    )
    if not response.data or len(response.data) != 1 or not response.data[0].b64_json:
        print(f"FAIL: expected one b64_json image, got {response!r}", file=sys.stderr)
        return 1
    if not isinstance(response.created, int):
        print(f"FAIL: created is not an integer: {response.created!r}", file=sys.stderr)
        return 1
    width, height = png_size(base64.b64decode(response.data[0].b64_json))
    expected = tuple(int(x) for x in args.size.split("x"))
    if (width, height) != expected:
        print(f"FAIL: PNG is {width}x{height}, asked for {args.size}", file=sys.stderr)
        return 1
    if not isinstance(response, ImagesResponse) or response.usage is None or response.usage.input_tokens <= 0 \
            or response.usage.output_tokens <= 0 or response.usage.total_tokens != response.usage.input_tokens + response.usage.output_tokens:
        return fail(f"usage missing or inconsistent: {response.usage!r}")
    if (response.size, response.output_format, response.background) != (args.size, "png", "opaque"):
        return fail(f"settings: size {response.size!r}, output_format {response.output_format!r}, background {response.background!r}")

    # Streaming: the SDK parses every event into its own types (a discriminated union on `type`).
    stream = client.images.generate(
        model="gpt-image-1", prompt="a red circle on a blue background", size=args.size, n=1, stream=True,
        partial_images=2, output_format="jpeg", quality="low", extra_body={"prior_steps": 2, "decoder_steps": 6, "seed": 1},
    )
    events = list(stream)
    kinds = [type(e).__name__ for e in events]
    if kinds != ["ImageGenPartialImageEvent"] * 2 + ["ImageGenCompletedEvent"]:
        return fail(f"stream events {kinds}, expected two partials then one completed")
    partials, completed = events[:2], events[2]
    if [p.partial_image_index for p in partials] != [0, 1]:
        return fail(f"partial_image_index {[p.partial_image_index for p in partials]}, expected [0, 1]")
    for e in events:
        if not isinstance(e, (ImageGenPartialImageEvent, ImageGenCompletedEvent)):
            return fail(f"not an SDK event type: {e!r}")
        if (e.size, e.output_format, e.quality, e.background) != (args.size, "jpeg", "low", "opaque") or not isinstance(e.created_at, int):
            return fail(f"{e.type}: size {e.size!r}, output_format {e.output_format!r}, quality {e.quality!r}, "
                        f"background {e.background!r}, created_at {e.created_at!r}")
        size = jpeg_size(base64.b64decode(e.b64_json))
        if size != expected:
            return fail(f"{e.type} is a {size[0]}x{size[1]} JPEG, asked for {args.size}")
    if completed.type != "image_generation.completed" or completed.usage.total_tokens != \
            completed.usage.input_tokens + completed.usage.output_tokens or completed.usage.input_tokens_details.text_tokens != completed.usage.input_tokens:
        return fail(f"completed event usage inconsistent: {completed.usage!r}")
    if len({e.b64_json for e in events}) != 3:
        return fail("the partial images repeat each other or the final image")

    try:
        client.images.generate(model="no-such-model", prompt="x", size=args.size, n=1)
        return fail("an unknown model was accepted")
    except openai.NotFoundError as e:
        if e.body is None or e.body.get("code") != "model_not_found" or e.body.get("param") != "model":
            return fail(f"unknown model rejected without model_not_found: {e.body!r}")

    # The SDK's error path: `url` answers 400 naming response_format.
    try:
        client.images.generate(model=args.model, prompt="x", size=args.size, response_format="url", n=1)
        print("FAIL: response_format=url was accepted", file=sys.stderr)
        return 1
    except openai.BadRequestError as e:
        if e.body is None or e.body.get("param") != "response_format":
            print(f"FAIL: url rejected without naming response_format: {e.body!r}", file=sys.stderr)
            return 1
    print(f"ok {width}x{height} stream {len(partials)} partials + completed, openai {openai.__version__}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
