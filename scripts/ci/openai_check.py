#!/usr/bin/env python3
"""Calls a running `wuerstchen serve` through the official openai SDK, unchanged, and checks the PNG.

    python scripts/ci/openai_check.py http://127.0.0.1:8080/v1 [--api-key KEY] [--size 128x128]

Exits 0 and prints `ok WIDTHxHEIGHT seed=...` when the SDK gets a valid PNG of the requested size;
exits 1 with the reason otherwise. Needs `pip install openai` (scripts/test.sh makes a virtualenv).
"""
import argparse
import base64
import sys

import openai

from png_check import png_size


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

    # The SDK's error path: `url` answers 400 naming response_format.
    try:
        client.images.generate(model=args.model, prompt="x", size=args.size, response_format="url", n=1)
        print("FAIL: response_format=url was accepted", file=sys.stderr)
        return 1
    except openai.BadRequestError as e:
        if e.body is None or e.body.get("param") != "response_format":
            print(f"FAIL: url rejected without naming response_format: {e.body!r}", file=sys.stderr)
            return 1
    print(f"ok {width}x{height} openai {openai.__version__}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
