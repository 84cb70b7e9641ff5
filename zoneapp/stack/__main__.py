"""``python -m zoneapp.stack {run,up}``: the embedded stack from the command line.

* ``run`` starts the stack, a worker and the demo feed, and prints a live summary;
* ``up`` starts only the stack and prints the variables to export for your own worker.

Ctrl-C or SIGTERM stops everything that was started (worker first) and exits 0; a
second Ctrl-C while stopping kills the children at once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shlex
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType

from zoneapp.stack.embedded import EmbeddedStack
from zoneapp.stack.process import ManagedProcess, StackError, free_port, port_is_free, tail
from zoneapp.stack.watch import (
    Example,
    TopicGroup,
    TopicWatcher,
    group_topics,
    render_example,
)
from zoneapp.stack.worker import WorkerProcess

__all__ = ["default_policy_path", "main"]

POLICY_NAME = "ecommerce.yaml"
EXAMPLE_DESTINATION = "confidential.payments"


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
        say(f"demo feed: {sys.executable} -m zoneapp.demo --broker {stack.broker_url} --rate 50")
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


def cmd_run(args: argparse.Namespace) -> int:
    web_port: int = args.web_port
    if not port_is_free(web_port):
        web_port = free_port()
        say(f"port {args.web_port} is in use; the worker's web server uses {web_port} instead")
    stack = _make_stack(args)
    worker: WorkerProcess | None = None
    _on_signals(_raise_interrupt)
    try:
        try:
            say(f"starting tansu, redis-server and a SoftHSM token in {stack.workdir} ...")
            stack.start()
            worker = WorkerProcess(
                stack.env(web_port=web_port),
                log_path=stack.logs_dir / "worker.log",
                web_port=web_port,
            )
            worker.start()
            stack.adopt(worker)
        except KeyboardInterrupt:
            return 0
        _banner(stack, worker, args)
        # Once running, the event loop's own handlers replace _raise_interrupt.
        return asyncio.run(_supervise(stack, worker, args))
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
    say(f"  broker   {stack.broker_url}  (tansu, in memory; log {stack.logs_dir / 'tansu.log'})")
    say(f"  vault    {stack.vault_url}  (redis-server, nothing persisted)")
    say(f"  keys     SoftHSM token {stack.token_label!r} in {stack.workdir / 'softhsm'}")
    say(f"  worker   http://127.0.0.1:{worker.web_port}/  log {worker.log_path}")
    say(f"  topics   {stack.partitions} partitions each: {', '.join(stack.topics)}")
    if args.rate > 0:
        say(f"  demo     {args.rate:g} records/s into restricted.payments, restricted.user-pii")
    say(f"  env      {sys.executable} -m zoneapp.stack up  prints the variables for your tools")
    say("Ctrl-C stops everything.")
    say()


async def _supervise(stack: EmbeddedStack, worker: WorkerProcess, args: argparse.Namespace) -> int:
    from zoneapp.demo import produce_demo
    from zoneapp.policy import load_policy

    policy = load_policy(stack.policy_path)
    groups: list[TopicGroup] = group_topics(policy)
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
    code = 0
    try:
        while not stop.is_set():
            await watcher.poll(0.5)
            if not ready and worker.is_ready():
                ready = True
                say(f"worker ready after {time.monotonic() - started:.0f}s")
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
    """Prefer a violation a detector found (card number in notes...) as the example."""
    if example.value is None:
        return False
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


# -- entry point -----------------------------------------------------------------------


def _make_stack(args: argparse.Namespace) -> EmbeddedStack:
    return EmbeddedStack(
        Path(args.workdir),
        Path(args.policy) if args.policy else default_policy_path(),
        args.partitions,
        broker_port=args.broker_port,
        redis_port=args.redis_port,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m zoneapp.stack", description="The embedded zoneapp stack."
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--policy", help="policy file (default: the example e-commerce policy)")
    common.add_argument("--workdir", default=".zoneapp", help="state dir (default: .zoneapp)")
    common.add_argument("--partitions", type=int, default=4, help="partitions per topic")
    common.add_argument("--broker-port", type=int, default=None, help="default: a free port")
    common.add_argument("--redis-port", type=int, default=None, help="default: a free port")
    common.add_argument("--web-port", type=int, default=6066, help="worker web port")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", parents=[common], help="stack + worker + demo feed + summary")
    run.add_argument("--rate", type=float, default=50.0, help="demo records/s (0: no demo)")
    run.add_argument("--seed", type=int, default=1, help="demo feed seed")
    run.add_argument("--interval", type=float, default=5.0, help="seconds between summaries")
    sub.add_parser("up", parents=[common], help="stack only; prints the env to export")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        code = cmd_run(args) if args.command == "run" else cmd_up(args)
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        code = 1
    sys.exit(code)


if __name__ == "__main__":
    main()
