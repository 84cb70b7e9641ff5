"""``python -m zoneapp.stack {run,up,tail}``: the embedded stack from the command line.

* ``run`` starts the stack, a worker and the demo feed, and prints a live summary.
  It mints demo API keys for that worker only (``zoneapp.stack.demo_keys``) and,
  once the worker is ready and the demo has produced a token and a violation,
  prints a "Try it" block: the zone map URL with the analyst key in its fragment,
  curl lines for ``/zones``, ``/violations``, ``/tokens/<token>`` and
  ``/detokenize``, and the ``tail`` commands for the audit topic. That block is the
  only place the plaintext keys ever appear. ``--otlp-endpoint`` (or the standard
  ``OTEL_*`` variables) sends the worker's traces to a collector such as Jaeger.
* ``up`` starts only the stack and prints the variables to export for your own
  worker (never the demo keys).
* ``tail TOPIC`` prints a topic's records and follows new ones (``zoneapp.stack.tail``).

Ctrl-C or SIGTERM stops everything that was started (worker first) and exits 0; a
second Ctrl-C while stopping kills the children at once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shlex
import signal
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from urllib.parse import quote, urlencode

from zoneapp.policy.compiled import AUDIT_TOPIC
from zoneapp.stack.apache_kafka import KAFKA_VERSION
from zoneapp.stack.demo_keys import DemoKeys
from zoneapp.stack.embedded import BROKER_ENV, BROKERS, EmbeddedStack
from zoneapp.stack.process import ManagedProcess, StackError, free_port, port_is_free, tail
from zoneapp.stack.watch import (
    Example,
    TopicGroup,
    TopicWatcher,
    group_topics,
    render_example,
)
from zoneapp.stack.worker import WorkerProcess

__all__ = ["DemoToken", "default_policy_path", "main", "run_worker_env", "try_it_lines"]

POLICY_NAME = "ecommerce.yaml"
EXAMPLE_DESTINATION = "confidential.payments"
DEFAULT_WORKDIR = ".zoneapp"
#: The service name of the demo's traces, unless OTEL_SERVICE_NAME (or a service.name
#: in OTEL_RESOURCE_ATTRIBUTES) says otherwise.
DEMO_SERVICE_NAME = "zoneapp-demo"
#: The zone whose tokens the demo officer key may resolve (see demo_keys.DEMO_ROLES).
OFFICER_ZONE = "restricted"
#: How long after the worker is ready "Try it" waits for a token and a violation.
TRY_IT_PATIENCE = 30.0


def default_policy_path() -> Path:
    """The example policy: ./deploy/policies, else the repository's, else the packaged copy."""
    package = Path(__file__).resolve().parents[1]
    candidates = (
        Path.cwd() / "deploy" / "policies" / POLICY_NAME,
        package.parent / "deploy" / "policies" / POLICY_NAME,
        package / "policies" / POLICY_NAME,
    )
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    return candidates[0]


def say(text: str = "") -> None:
    print(text, flush=True)


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _on_signals(handler: Callable[[int, FrameType | None], object] | int) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, handler)


def _kill_on_second_signal(procs: Sequence[ManagedProcess], stack: EmbeddedStack) -> None:
    """While stopping, another Ctrl-C/SIGTERM SIGKILLs the children instead of waiting."""

    def kill(signum: int, frame: FrameType | None) -> None:
        say("killing everything now")
        for proc in procs:
            proc.kill()
        stack.kill()

    _on_signals(kill)


# -- up --------------------------------------------------------------------------------


def cmd_up(args: argparse.Namespace) -> int:
    stack = _make_stack(args)
    _on_signals(_raise_interrupt)
    try:
        try:
            stack.start()
        except KeyboardInterrupt:
            return 0
        say(f"stack is up (logs in {stack.logs_dir}); for a worker on it, export:")
        say()
        for name, value in sorted(stack.env(web_port=args.web_port).items()):
            say(f"export {name}={shlex.quote(value)}")
        say()
        say("then: faust -A zoneapp worker -l info")
        say(
            "its web views need ZONEAPP_API_KEYS_FILE with keys of your own (README: API keys); "
            "`run` mints demo keys for its own worker only"
        )
        say(
            f"demo feed: {sys.executable} -m zoneapp.stack.demo"
            f" --broker {stack.broker_url} --rate 50"
        )
        say("Ctrl-C stops the stack.")
        try:
            while True:
                stack.check_alive()
                time.sleep(1.0)
        except KeyboardInterrupt:
            return 0
        except StackError as exc:
            say(f"error: {exc}")
            return 1
    finally:
        _kill_on_second_signal((), stack)
        say("stopping the stack")
        stack.stop()


# -- run -------------------------------------------------------------------------------


def run_worker_env(
    stack_env: Mapping[str, str],
    keys_file: Path,
    *,
    otlp_endpoint: str | None,
    environ: Mapping[str, str],
) -> tuple[dict[str, str], tuple[str, ...]]:
    """The worker's variables on top of ``stack_env`` (the demo keys file, tracing), and
    the inherited ones to drop.

    The worker also inherits ``environ`` (WorkerProcess), so ``OTEL_*`` variables
    already set reach it unchanged; ``--otlp-endpoint`` wins over them and names the
    base URL, as ``OTEL_EXPORTER_OTLP_ENDPOINT`` does (``/v1/traces`` is appended for
    OTLP/HTTP), so a traces-only endpoint from the shell is dropped.
    """
    env = {**stack_env, "ZONEAPP_API_KEYS_FILE": str(keys_file)}
    unset: tuple[str, ...] = ()
    if otlp_endpoint:
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = otlp_endpoint
        unset = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",)
    named = environ.get("OTEL_SERVICE_NAME") or "service.name=" in environ.get(
        "OTEL_RESOURCE_ATTRIBUTES", ""
    )
    if not named:
        env["OTEL_SERVICE_NAME"] = DEMO_SERVICE_NAME
    return env, unset


def cmd_run(args: argparse.Namespace) -> int:
    web_port: int = args.web_port
    if web_port == 0:
        web_port = free_port()
    elif not port_is_free(web_port):
        web_port = free_port()
        say(f"port {args.web_port} is in use; the worker's web server uses {web_port} instead")
    stack = _make_stack(args)
    worker: WorkerProcess | None = None
    _on_signals(_raise_interrupt)
    try:
        try:
            say(f"starting {stack.broker}, redis-server and a SoftHSM token in {stack.workdir} ...")
            stack.start()
            keys = stack.mint_demo_keys()
            env, unset = run_worker_env(
                stack.env(web_port=web_port),
                keys.path,
                otlp_endpoint=args.otlp_endpoint,
                environ=os.environ,
            )
            worker = WorkerProcess(
                env, log_path=stack.logs_dir / "worker.log", web_port=web_port, unset=unset
            )
            worker.start()
            stack.adopt(worker)
        except KeyboardInterrupt:
            return 0
        _banner(stack, worker, args)
        # Once running, the event loop's own handlers replace _raise_interrupt.
        return asyncio.run(_supervise(stack, worker, keys, args))
    except KeyboardInterrupt:
        return 0
    finally:
        procs: tuple[ManagedProcess, ...] = (worker,) if worker is not None else ()
        _kill_on_second_signal(procs, stack)
        if worker is not None:
            say("stopping the worker (up to 15 s) ...")
            code = worker.stop(timeout=15.0)
            say(f"worker exited with code {code}; its log: {worker.log_path}")
        say("stopping the stack ...")
        stack.stop()
        say("stopped")


def _banner(stack: EmbeddedStack, worker: WorkerProcess, args: argparse.Namespace) -> None:
    say()
    say("zoneapp demo")
    kind = "tansu, in memory" if stack.broker == "tansu" else f"Apache Kafka {KAFKA_VERSION}"
    say(f"  broker   {stack.broker_url}  ({kind}; log {stack.broker_log})")
    say(f"  vault    {stack.vault_url}  (redis-server, nothing persisted)")
    say(f"  keys     SoftHSM token {stack.token_label!r} in {stack.workdir / 'softhsm'}")
    say(f"  worker   http://127.0.0.1:{worker.web_port}/  log {worker.log_path}")
    say(f"  topics   {stack.partitions} partitions each: {', '.join(stack.topics)}")
    if args.rate > 0:
        say(f"  demo     {args.rate:g} records/s into restricted.payments, restricted.user-pii")
    say(f"  env      {sys.executable} -m zoneapp.stack up  prints the variables for your tools")
    say("Ctrl-C stops everything. Demo API keys and curl lines follow once data flows.")
    say()


@dataclass(frozen=True, slots=True)
class DemoToken:
    """A token the demo just produced (the customer e-mail of a forwarded payment)."""

    token: str
    tenant: str
    topic: str
    field: str


#: What "Try it" puts into shell lines and prints: an opaque token and a plain tenant id.
#: Records are data anyone on the broker can write, so anything else is not used.
_TOKEN = re.compile(r"tok_[A-Za-z]{32}")
_TENANT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def demo_token(example: Example) -> DemoToken | None:
    """The ``customer.email`` token of a forwarded payment record, if it has one."""
    try:
        value = json.loads(example.value or b"")
        token, tenant = value["customer"]["email"], value["tenant_id"]
    except (ValueError, KeyError, TypeError):
        return None
    if not (isinstance(token, str) and _TOKEN.fullmatch(token)):
        return None
    if not (isinstance(tenant, str) and _TENANT.fullmatch(tenant)):
        return None
    return DemoToken(token, tenant, example.topic, "customer.email")


def _tail_command(topic: str, workdir: str) -> str:
    argv = [sys.executable, "-m", "zoneapp.stack", "tail", topic]
    if workdir != DEFAULT_WORKDIR:
        argv += ["--workdir", workdir]
    return shlex.join(argv)


def try_it_lines(
    keys: DemoKeys,
    web_port: int,
    token: DemoToken | None,
    *,
    workdir: str,
    tracing: str | None,
) -> list[str]:
    """The "Try it" block: every URL and command in it works as printed (copy-paste).

    One line per item, ``  <label>  <command>``; the integration test reads them back.
    """
    base = f"http://127.0.0.1:{web_port}"

    def curl(key: str, path: str) -> str:
        return shlex.join(["curl", "-s", "-H", f"Authorization: Bearer {key}", base + path])

    lines = [
        "Try it (demo API keys, minted for this run only: just their hashes are stored, "
        "in the work directory, until the stack stops)",
        f"  zone map    {base}/#key={keys.analyst}",
        f"  zones       {curl(keys.viewer, '/zones')}",
        f"  violations  {curl(keys.analyst, '/violations?limit=5')}",
    ]
    if token is not None:
        query = urlencode({"zone": OFFICER_ZONE, "tenant": token.tenant, "token": token.token})
        lines += [
            f"  token       {curl(keys.analyst, '/tokens/' + quote(token.token, safe=''))}",
            f"  detokenize  {curl(keys.officer, '/detokenize?' + query)}",
            f"              (the {token.field} of a {token.topic} record, tenant {token.tenant};"
            " the officer key resolves it)",
        ]
    else:
        lines.append(
            "  token       (no token yet: the /tokens and /detokenize lines need the demo feed, "
            "--rate > 0)"
        )
    lines += [
        f"  audit       {_tail_command(AUDIT_TOPIC, workdir)}",
        "              (every detokenize call, allowed or refused, shows up here)",
        f"  peek        {_tail_command(EXAMPLE_DESTINATION, workdir)}",
    ]
    if tracing is not None:
        lines.append(f"  traces      {tracing}")
    lines.append(
        f"  keys        viewer {keys.viewer}  analyst {keys.analyst}  "
        f"officer:{OFFICER_ZONE} {keys.officer}"
    )
    return lines


_TRACING_LINE = re.compile(r"\] tracing: (.+?)\s*$", re.MULTILINE)


def _worker_tracing(worker: WorkerProcess) -> str | None:
    """What the worker logged about tracing ("OTLP http/protobuf to ... as ...", "off ...")."""
    found = _TRACING_LINE.search(worker.log_text())
    if found is None:
        return None
    state = found[1]
    if state.startswith("off"):
        state += "; for Jaeger: make run OTLP=http://localhost:4318 (see the README)"
    return state


async def _supervise(
    stack: EmbeddedStack, worker: WorkerProcess, keys: DemoKeys, args: argparse.Namespace
) -> int:
    from zoneapp.policy import load_policy
    from zoneapp.stack.demo import produce_demo

    policy = load_policy(stack.policy_path)
    groups: list[TopicGroup] = group_topics(policy)
    if AUDIT_TOPIC in stack.topics:
        groups.append(TopicGroup("audit", (AUDIT_TOPIC,)))
    examples = [t for t in (EXAMPLE_DESTINATION, policy.security_topic) if t in stack.topics]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    demo: asyncio.Task[int] | None = None
    if args.rate > 0:
        demo = asyncio.create_task(
            produce_demo(stack.broker_url, rate=args.rate, count=None, seed=args.seed, stop=stop)
        )
    watcher = TopicWatcher(
        stack.bootstrap, stack.topics, example_topics=examples, prefer=_illustrative
    )
    await watcher.start()
    started = time.monotonic()
    next_report = started + args.interval
    shown: set[str] = set()
    ready = False
    ready_at = 0.0
    tried = False
    code = 0
    try:
        while not stop.is_set():
            await watcher.poll(0.5)
            if not ready and worker.is_ready():
                ready = True
                ready_at = time.monotonic()
                say(f"worker ready after {ready_at - started:.0f}s")
            if ready and not tried:
                example = watcher.examples.get(EXAMPLE_DESTINATION)
                token = demo_token(example) if example is not None else None
                violated = watcher.counts.get(policy.security_topic, 0) > 0
                if (token is not None and violated) or (
                    time.monotonic() - ready_at > TRY_IT_PATIENCE
                ):
                    tried = True
                    if example is not None and token is not None and example.topic not in shown:
                        shown.add(example.topic)
                        say(f"example from {render_example(example)}")
                    say()
                    for line in try_it_lines(
                        keys,
                        worker.web_port,
                        token,
                        workdir=args.workdir,
                        tracing=_worker_tracing(worker),
                    ):
                        say(line)
                    say()
            if worker.poll() is not None:
                say(f"error: the worker exited with code {worker.poll()}; last lines of its log:")
                say(tail(worker.log_path, 40))
                code = 1
                break
            failed = demo is not None and demo.done() and not demo.cancelled()
            if failed and demo is not None and demo.exception() is not None:
                say(f"error: the demo producer failed: {demo.exception()!r}")
                code = 1
                break
            try:
                stack.check_alive()
            except StackError as exc:
                say(f"error: {exc}")
                code = 1
                break
            if time.monotonic() >= next_report:
                next_report += args.interval
                _report(watcher, groups, worker, ready, started, shown)
    finally:
        stop.set()
        if demo is not None:
            with contextlib.suppress(Exception):
                sent = await asyncio.wait_for(demo, 10.0)
                say(f"demo producer sent {sent} records")
        await watcher.stop()
    return code


def _illustrative(example: Example) -> bool:
    """Prefer a violation a detector found (card number in notes...) as the example,
    and a forwarded payment with a token (the one "Try it" resolves)."""
    if example.value is None:
        return False
    if example.topic == EXAMPLE_DESTINATION:
        return demo_token(example) is not None
    try:
        event = json.loads(example.value)
    except ValueError:
        return True
    return not isinstance(event, dict) or "detector" not in event or bool(event["detector"])


def _report(
    watcher: TopicWatcher,
    groups: list[TopicGroup],
    worker: WorkerProcess,
    ready: bool,
    started: float,
    shown: set[str],
) -> None:
    state = "ready" if ready else "starting"
    say(f"--- {time.strftime('%H:%M:%S')}  +{time.monotonic() - started:.0f}s  worker {state}")
    say(watcher.summary(groups))
    # Wait a little for an illustrative example (a DLP finding rather than a broken record).
    patient = time.monotonic() - started < 30
    for topic, example in watcher.examples.items():
        if topic not in shown and (topic in watcher.preferred or not patient):
            shown.add(topic)
            say(f"example from {render_example(example)}")


# -- tail ----------------------------------------------------------------------------------


def cmd_tail(args: argparse.Namespace) -> int:
    from zoneapp.stack.tail import broker_of_workdir, tail_topic

    broker = args.broker or broker_of_workdir(Path(args.workdir))

    def out(text: str) -> None:
        print(text, flush=True)

    async def run() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        return await tail_topic(
            broker.split("://", 1)[-1],
            args.topic,
            follow=not args.no_follow,
            from_end=args.start == "end",
            max_records=args.max_records,
            out=out,
            stop=stop,
        )

    try:
        asyncio.run(run())
    except BrokenPipeError:  # `... tail TOPIC | head`
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the exit-time flush
    return 0


# -- entry point -----------------------------------------------------------------------


def _make_stack(args: argparse.Namespace) -> EmbeddedStack:
    return EmbeddedStack(
        Path(args.workdir),
        Path(args.policy) if args.policy else default_policy_path(),
        args.partitions,
        broker_port=args.broker_port,
        redis_port=args.redis_port,
        broker=args.broker,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m zoneapp.stack", description="The embedded zoneapp stack."
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--policy", help="policy file (default: the example e-commerce policy)")
    common.add_argument("--workdir", default=DEFAULT_WORKDIR, help="state dir (default: .zoneapp)")
    common.add_argument("--partitions", type=int, default=4, help="partitions per topic")
    common.add_argument(
        "--broker",
        choices=BROKERS,
        default=None,
        help=f"tansu (in memory, the default) or kafka (Apache Kafka {KAFKA_VERSION}, "
        f"fetched with Maven on first use); default: ${BROKER_ENV}, else tansu",
    )
    common.add_argument("--broker-port", type=int, default=None, help="default: a free port")
    common.add_argument("--redis-port", type=int, default=None, help="default: a free port")
    common.add_argument("--web-port", type=int, default=6066, help="worker web port (0: any)")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", parents=[common], help="stack + worker + demo feed + summary")
    run.add_argument("--rate", type=float, default=50.0, help="demo records/s (0: no demo)")
    run.add_argument("--seed", type=int, default=1, help="demo feed seed")
    run.add_argument("--interval", type=float, default=5.0, help="seconds between summaries")
    run.add_argument(
        "--otlp-endpoint",
        default=None,
        metavar="URL",
        help="send the worker's traces there (OTEL_EXPORTER_OTLP_ENDPOINT), "
        "e.g. http://localhost:4318 for Jaeger",
    )
    sub.add_parser("up", parents=[common], help="stack only; prints the env to export")
    tail_parser = sub.add_parser(
        "tail", help="print a topic's records (key, headers, value) and follow new ones"
    )
    tail_parser.add_argument("topic")
    tail_parser.add_argument(
        "--workdir", default=DEFAULT_WORKDIR, help="the running stack's dir (default: .zoneapp)"
    )
    tail_parser.add_argument("--broker", default=None, help="HOST:PORT instead of --workdir's")
    tail_parser.add_argument(
        "--from",
        dest="start",
        choices=("beginning", "end"),
        default="beginning",
        help="start at the oldest record (default) or only print new ones",
    )
    tail_parser.add_argument(
        "--no-follow", action="store_true", help="exit once every partition is caught up"
    )
    tail_parser.add_argument(
        "-n", "--max-records", type=int, default=None, help="exit after N records"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    commands = {"run": cmd_run, "up": cmd_up, "tail": cmd_tail}
    try:
        code = commands[args.command](args)
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        code = 1
    sys.exit(code)


if __name__ == "__main__":
    main()
