"""The ``sockethub`` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

from gateway.settings import GatewaySettings
from platform_runners.settings import RunnerSettings
from sockethub.devstack.errors import StackError
from sockethub.runtime.settings import CommonSettings
from sockethub.settings_cli import add_settings_flags, settings_from_args


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sockethub", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    dev = sub.add_parser("dev", help="start Kafka, Redis, the gateway and every runner")
    dev.add_argument("--state-dir", default=".sockethub", help="where the local services keep data")
    dev.add_argument("--kafka-port", type=int, default=9092, help="port of the local broker")
    dev.add_argument("--kafka-controller-port", type=int, default=9093,
                     help="controller port of the local broker")  # fmt: skip
    dev.add_argument("--redis-port", type=int, default=6379, help="port of the local Redis")
    add_settings_flags(dev, GatewaySettings)

    provision = sub.add_parser("provision", help="install what the stack (and the tests) need")
    provision.add_argument("--tests", action="store_true", help="also the test peers and tools")

    gateway = sub.add_parser("gateway", help="run one gateway instance")
    add_settings_flags(gateway, GatewaySettings)

    runner = sub.add_parser("runner", help="run one platform's runner")
    runner.add_argument("--platform", required=True, help="the platform to run")
    add_settings_flags(runner, RunnerSettings)

    replay = sub.add_parser("replay", help="print a session's, actor's or platform's history")
    replay.add_argument(
        "--session", help="only this session id (write --session=ID when it starts with -)"
    )
    replay.add_argument("--actor", help="only activities with this actor or target id")
    replay.add_argument("--platform", help="only this platform")
    replay.add_argument(
        "--type", dest="types", action="append", choices=["request", "result", "event",
        "credentials"], help="only these record types (repeatable)",
    )  # fmt: skip
    replay.add_argument("--since", type=_timestamp, help="ISO 8601 time, inclusive")
    replay.add_argument("--until", type=_timestamp, help="ISO 8601 time, inclusive")
    replay.add_argument("--format", choices=["table", "json"], default="table")
    replay.add_argument("--follow", action="store_true", help="keep printing new records")
    replay.add_argument("--to-topic", help="re-drive the selected requests into this topic")
    add_settings_flags(replay, CommonSettings)

    runners = sub.add_parser("runners", help="supervise one runner process per enabled platform")
    add_settings_flags(runners, RunnerSettings)
    return parser


def _timestamp(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _dispatch(args)
    except StackError as err:
        print(f"sockethub: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "dev":
        from sockethub.dev import DevPorts, run_dev

        return run_dev(
            settings_from_args(GatewaySettings, args),
            state_dir=args.state_dir,
            ports=DevPorts(args.kafka_port, args.kafka_controller_port, args.redis_port),
        )
    if args.command == "provision":
        from sockethub.devstack.provision import provision

        provision(tests=args.tests)
        return 0
    if args.command == "gateway":
        from gateway.server import serve

        serve(settings_from_args(GatewaySettings, args))
        return 0
    if args.command == "runner":
        from platform_runners.process import run_runner

        return run_runner(settings_from_args(RunnerSettings, args), args.platform)
    if args.command == "replay":
        from sockethub.replay import RECORD_TYPES, Filters, run

        filters = Filters(
            session=args.session, actor=args.actor, platform=args.platform,
            types=frozenset(args.types or RECORD_TYPES), since=args.since, until=args.until,
        )  # fmt: skip
        return run(settings_from_args(CommonSettings, args), filters, fmt=args.format,
                   follow=args.follow, to_topic=args.to_topic)  # fmt: skip
    if args.command == "runners":
        from sockethub.dev import run_runners

        return run_runners(settings_from_args(RunnerSettings, args))
    raise AssertionError(args.command)


if __name__ == "__main__":
    sys.exit(main())
