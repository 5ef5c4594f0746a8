"""``snnlite targets [NAME|FILE ...]``: the target profiles (energies, memory model,
constraints), every figure with its source.

    snnlite targets                  # one line per built-in profile
    snnlite targets loihi speck      # every figure of these, with citation and place
    snnlite targets my_chip.json     # validate your own profile and list it
    snnlite targets loihi --format json
"""
import json

from ..event.targets import builtin, get_target


def add_parser(subparsers):
    a = subparsers.add_parser(
        "targets", help="list the target profiles and the source of every figure",
        description="The target profiles that snnlite audit --target takes: per-operation "
                    "and memory energies and chip constraints, each figure with its source "
                    "(second-hand figures marked). Give names or JSON files to see them in "
                    "full; a file is validated.")
    a.add_argument("names", nargs="*", help="profile names or JSON files (default: list all)")
    a.add_argument("--format", default="table", choices=["table", "json"],
                   help="output format")
    a.set_defaults(func=run)
    return a


def _value(v):
    if v is None:
        return "null"
    return json.dumps(v) if isinstance(v, (list, dict)) else f"{v:g}" if isinstance(
        v, float) else str(v)


def describe(t):
    """Lines for people: the profile's title, then each figure with its citation."""
    lines = [f"{t.name}: {t.title}", f"  {t.description}" if t.description else ""]
    for key, v, cite, second in t.citations():
        section, name = key.split(".")
        f = getattr(t, section)[name]
        lines.append(f"  {key} = {_value(v)}" + ("  [second-hand]" if second else ""))
        lines.append(f"      {cite}")
        if f.note and f.value is not None:
            lines.append(f"      note: {f.note}")
    return "\n".join(x for x in lines if x)


def run(args):
    targets = [get_target(n) for n in args.names] if args.names else list(builtin().values())
    if args.format == "json":
        print(json.dumps([t.as_dict() for t in targets], indent=2))
        return 0
    if not args.names:
        width = max(len(t.name) for t in targets)
        for t in targets:
            n2 = sum(1 for *_, s in t.citations() if s)
            print(f"{t.name:<{width}}  {t.title}  ({len(t.sources)} sources"
                  + (f", {n2} second-hand figures" if n2 else "") + ")")
        print("snnlite targets NAME shows every figure with its source.")
        return 0
    print("\n\n".join(describe(t) for t in targets))
    return 0
