"""Extract the `vllm serve` flag names from a vLLM wheel, without installing it.

Usage:
    pip download vllm==0.33.0 --no-deps -d /tmp/vllm
    python tools/extract_vllm_flags.py /tmp/vllm/vllm-0.33.0-*.whl > compose/data/vllm-flags-0.33.0.txt

Sources read inside the wheel:
- vllm/engine/arg_utils.py: every literal "--flag" passed to add_argument
  (EngineArgs.add_cli_args and AsyncEngineArgs.add_cli_args).
- vllm/entrypoints/common/cli_args.py: BaseFrontendArgs and FrontendArgs
  dataclass fields, which vLLM turns into "--field-name" flags with get_kwargs().
Boolean fields also get a "--no-" form (argparse.BooleanOptionalAction).
"""
from __future__ import annotations

import ast
import re
import sys
import zipfile

FRONTEND_CLASSES = {"BaseFrontendArgs", "FrontendArgs"}


def _frontend_flags(source: str) -> set[str]:
    flags: set[str] = set()
    tree = ast.parse(source)
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name in FRONTEND_CLASSES:
            for item in node.body:
                if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    name = "--" + item.target.id.replace("_", "-")
                    flags.add(name)
                    if ast.unparse(item.annotation) == "bool":
                        flags.add("--no-" + item.target.id.replace("_", "-"))
    return flags


def main(wheel: str) -> int:
    with zipfile.ZipFile(wheel) as zf:
        arg_utils = zf.read("vllm/engine/arg_utils.py").decode()
        cli_args = zf.read("vllm/entrypoints/common/cli_args.py").decode()
        version = re.search(r"vllm-([0-9][^-]*)-", wheel.rsplit("/", 1)[-1]).group(1)
    flags = set(re.findall(r'"(--[a-z0-9][a-z0-9-]*)"', arg_utils))
    flags |= _frontend_flags(cli_args)
    print(f"# vLLM {version} `vllm serve` flags, extracted by tools/extract_vllm_flags.py")
    print("# from vllm/engine/arg_utils.py and vllm/entrypoints/common/cli_args.py in the")
    print(f"# vllm=={version} wheel. Generated: do not edit; re-run the tool for a new release.")
    for flag in sorted(flags):
        print(flag)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
