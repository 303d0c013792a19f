"""`posfleet keys`: master key files and their versions, key rotation, who holds which key.

``new`` writes a master key file (a version, mode 0600, never over an existing file);
``show`` prints a key file's version and check value; ``register`` records a version as
issued; ``rotate`` creates a key rollout (worked by ``posfleet rollout run``); ``list``
counts the terminals per key version and names those on versions the fleet never issued.
No command prints, logs or stores a key: versions and check values (KCV) only. The domain
is :mod:`fleet.device.issued`, :mod:`fleet.device.keyring` and :mod:`fleet.rollout.keys`,
imported when a command runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from fleet.cli.common import TableJson, TableJsonOpt, emit, emit_json, fail, out, state

keys_app = typer.Typer(
    help="Fleet master keys: versions, rotation over the wire, which terminal holds which.",
    no_args_is_help=True,
)

KeyPathArg = Annotated[Path, typer.Argument(help="Master key file")]
NoteOpt = Annotated[str, typer.Option(help="Why (audited)")]


def _read(path: Path, *, allow_open: bool = False) -> Any:
    """The master key in ``path`` (a bad file, or one others can read unless
    ``allow_open``: one line naming it, exit 2)."""
    from protocols.errors import MacError  # noqa: PLC0415
    from protocols.mac import read_master_key  # noqa: PLC0415

    try:
        return read_master_key(path, allow_open=allow_open)
    except MacError as exc:
        raise fail(str(exc), 2) from None


@keys_app.command("new")
def keys_new(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="Where to write the key file (mode 0600)")],
    version: Annotated[int, typer.Option(help="The key's version (1..4294967295)")] = 1,
    fmt: TableJsonOpt = TableJson.TABLE,
) -> None:
    """Write a new random master key file of a version. Never over an existing file."""
    from fleet.cli.outfile import check_target  # noqa: PLC0415
    from protocols.errors import MacError  # noqa: PLC0415
    from protocols.mac import MasterKey, generate_master_key_file  # noqa: PLC0415

    check_target(path, force=True, db=state(ctx).db)  # never the database, never a directory
    if path.exists() or path.is_symlink():
        raise fail(f"{path} exists: a master key file is never overwritten", 2)
    try:
        key = generate_master_key_file(path, version=version)
    except FileExistsError:
        raise fail(f"{path} exists: a master key file is never overwritten", 2) from None
    except MacError as exc:
        raise fail(f"--version: {exc}", 2) from None
    except OSError as exc:
        raise fail(f"{path}: {exc.strerror or exc}") from None
    doc = {
        "path": str(path),
        "version": version,
        "check_value": MasterKey(version, key).check_value,
    }
    if fmt == TableJson.JSON:
        emit_json(doc)
        return
    out.print(
        f"wrote {path}: master key version {version}, check value {doc['check_value']} (mode 0600)",
        highlight=False,
    )


@keys_app.command("show")
def keys_show(
    paths: Annotated[list[Path], typer.Argument(help="Master key files")],
    fmt: TableJsonOpt = TableJson.TABLE,
) -> None:
    """Each key file's version and check value (never the key), and who may read it."""
    rows = []
    for path in paths:
        master = _read(path, allow_open=True)  # shown, with who may read it
        mode = path.stat().st_mode & 0o777
        rows.append(
            {
                "file": str(path),
                "version": master.version,
                "check_value": master.check_value,
                "mode": f"{mode:04o}" + ("" if mode & 0o077 == 0 else " (others can read it)"),
            }
        )
    emit(rows, ["file", "version", "check_value", "mode"], fmt.value, title="Master key files")


@keys_app.command("register")
def keys_register(
    ctx: typer.Context,
    path: KeyPathArg,
    note: NoteOpt = "",
) -> None:
    """Record a key file's version as issued by the fleet (its check value, never the key):
    a terminal that reports a version never issued is flagged. `keys rotate` registers both
    of its keys."""
    from fleet.core.db import writer  # noqa: PLC0415
    from fleet.device import register  # noqa: PLC0415

    master = _read(path)
    st = state(ctx)
    with writer(st.engine()).begin() as conn:
        new = register(conn, master, actor=st.actor, note=note, source=str(path))
    what = f"key version {master.version} (check value {master.check_value})"
    out.print(f"{what} {'registered as issued' if new else 'was already registered'}")


@keys_app.command("rotate")
def keys_rotate(
    ctx: typer.Context,
    old: Annotated[Path, typer.Option("--from", help="The master key file terminals hold now")],
    new: Annotated[Path, typer.Option("--to", help="The new master key file (a higher version)")],
    group: Annotated[str, typer.Option(help="all, mcc=…, region=…, tag=… (';' joins)")] = "all",
    waves: Annotated[str | None, typer.Option(help="Cumulative shares, e.g. 1%,10%,100%")] = None,
    max_failures: Annotated[str | None, typer.Option(help="Halt past this share, e.g. 5%")] = None,
    note: Annotated[str, typer.Option(help="Kept with the rollout (audited)")] = "",
    fmt: TableJsonOpt = TableJson.TABLE,
) -> None:
    """Create a key rollout: every deployed terminal with a link (in the group) moves from
    the old key to the new one, in waves. Work on it with `posfleet rollout run ID
    --key-file OLD --key-file NEW`."""
    from fleet.cli.rollout import plan_options  # noqa: PLC0415
    from fleet.fees import parse_group  # noqa: PLC0415
    from fleet.rollout import create_key_rollout  # noqa: PLC0415

    before, after = _read(old), _read(new)
    st = state(ctx)
    wave_list, ppm = plan_options(waves, max_failures)
    rid, sizes = create_key_rollout(
        st.engine(), before, after, group=parse_group(group), policy=st.policy().rollout,
        actor=st.actor, waves=wave_list, max_failure_ppm=ppm, note=note,
        sources=(str(old), str(new)),
    )  # fmt: skip
    run = f"posfleet rollout run {rid} --key-file {old} --key-file {new}"
    if fmt == TableJson.JSON:
        emit_json(
            {
                "rollout": rid,
                "from_version": before.version,
                "to_version": after.version,
                "check_values": {
                    str(before.version): before.check_value,
                    str(after.version): after.check_value,
                },
                "terminals": sum(sizes),
                "waves": sizes,
                "run": run,
            }
        )
        return
    out.print(
        f"rollout {rid}: key v{before.version} (check value {before.check_value}) → "
        f"v{after.version} (check value {after.check_value}) to {sum(sizes)} terminals in "
        "waves of " + " + ".join(map(str, sizes)),
        highlight=False,
        soft_wrap=True,
    )
    out.print(f"work on it with: {run}", highlight=False, soft_wrap=True)


@keys_app.command("list")
def keys_list(ctx: typer.Context, fmt: TableJsonOpt = TableJson.TABLE) -> None:
    """Key versions: issued (check value, when, by whom), live terminals using each and
    holding each as their next key; terminals on versions the fleet never issued."""
    from fleet.device import census  # noqa: PLC0415

    st = state(ctx)
    found = census(st.engine())
    doc = found.as_dict()
    if fmt == TableJson.JSON:
        emit_json(doc)
        return
    rows = [
        v | {"issued": f"{v['registered_at']:%Y-%m-%d} by {v['registered_by']}"}
        if v["issued"]
        else v | {"issued": "NEVER", "check_value": "?"}
        for v in doc["versions"]
    ]
    columns = ["version", "check_value", "issued", "terminals", "pending"]
    emit(rows, columns, "table", title="Key versions (terminals: live ones using it)")
    if not any(v["issued"] for v in doc["versions"]):
        out.print("no key version is registered: `posfleet keys register FILE` the fleet's key")
    if found.unreported:
        out.print(
            f"{found.unreported} live terminals have not reported a key version yet (they "
            "report it at their next sync, push or key change)",
            soft_wrap=True,
        )
    if found.unissued:
        columns = ["serial", "merchant_id", "key_version", "key_next", "last_seen"]
        emit(
            found.unissued,
            columns,
            "table",
            title="On a key version the fleet never issued: take out of service, replace",
        )
