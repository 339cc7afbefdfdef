"""The ``sockethub`` command."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib import metadata
from typing import Any

import structlog

from gateway.settings import GatewaySettings
from platform_runners.settings import RunnerSettings
from sockethub.devstack.errors import StackError
from sockethub.preflight import check_services
from sockethub.runtime.observability import configure_logging
from sockethub.runtime.settings import CommonSettings
from sockethub.settings_cli import add_settings_flags, settings_from_args, unknown_variable_report

DISTRIBUTION = "sockethub-kafka"

log = structlog.get_logger("sockethub.cli")


def version() -> str:
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sockethub", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
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
        "credentials", "operation"], help="only these record types (repeatable)",
    )  # fmt: skip
    replay.add_argument("--since", type=_timestamp, help="ISO 8601 time, inclusive")
    replay.add_argument("--until", type=_timestamp, help="ISO 8601 time, inclusive")
    replay.add_argument("--format", choices=["table", "json"], default="table")
    replay.add_argument("--follow", action="store_true", help="keep printing new records")
    replay.add_argument("--to-topic", help="re-drive the selected requests into this topic")
    replay.add_argument(
        "--force", action="store_true",
        help="let --to-topic write into this deployment's live request, reply or connection "
        "topics",
    )  # fmt: skip
    add_settings_flags(replay, CommonSettings)

    topics = sub.add_parser(
        "topics", help="create the topics of the enabled platforms and gateways"
    )
    topics.add_argument(
        "--gateway-ids", default="",
        help="comma-separated gateway ids whose reply topics to create (e.g. the StatefulSet's "
        "pod names)",
    )  # fmt: skip
    add_settings_flags(topics, CommonSettings)

    _dlq_parser(sub)

    runners = sub.add_parser("runners", help="supervise one runner process per enabled platform")
    add_settings_flags(runners, RunnerSettings)
    return parser


def _dlq_parser(sub: Any) -> None:
    dlq = sub.add_parser(
        "dlq", help="list, show, re-drive and purge dead letters (every action is audited)"
    )
    actions = dlq.add_subparsers(dest="dlq_action", required=True)
    listing = actions.add_parser("list", help="dead letters, oldest first")
    listing.add_argument("--platform", help="only this platform's dead letters")
    listing.add_argument("--reason", action="append", help="only this reason (repeatable): "
                         "crash, undecodable, not_a_request, foreign_reply_route")  # fmt: skip
    listing.add_argument(
        "--session", help="only this session id (--session=ID if it starts with -)"
    )
    listing.add_argument("--since", type=_timestamp, help="dead-lettered at or after (ISO 8601)")
    listing.add_argument("--until", type=_timestamp, help="dead-lettered at or before (ISO 8601)")
    listing.add_argument("--format", choices=["table", "json"], default="table")
    add_settings_flags(listing, CommonSettings)
    show = actions.add_parser("show", help="dead letters in full, decrypted, secrets redacted")
    show.add_argument(
        "ids", nargs="+", metavar="ID", help="platform:partition:offset or activity id"
    )
    add_settings_flags(show, CommonSettings)
    redrive = actions.add_parser(
        "redrive", help="send dead-lettered requests back to their platform's request topic",
        description="Refused for an activity that already has a result in the log (other than "
        "the error answer sent when it was dead-lettered) unless --force. Its crash counters "
        "in Redis are cleared first, so the runner runs it afresh.",
    )  # fmt: skip
    redrive.add_argument("ids", nargs="*", metavar="ID", help="platform:partition:offset or "
                         "activity id")  # fmt: skip
    redrive.add_argument("--all", action="store_true", help="every dead letter of --platform")
    redrive.add_argument("--platform", help="with --all: the platform")
    redrive.add_argument("--since", type=_timestamp, help="with --all: dead-lettered at or after")
    redrive.add_argument("--force", action="store_true", help="re-drive answered activities too")
    add_settings_flags(redrive, CommonSettings)
    purge = actions.add_parser(
        "purge", help="remove dead letters older than --before",
        description="Kafka cannot delete single records: each dead-letter partition's start is "
        "moved (DeleteRecords) up to its first dead letter stamped at or after --before, so "
        "every older one is removed for all readers. Not undoable.",
    )  # fmt: skip
    purge.add_argument("--before", type=_timestamp, required=True, help="ISO 8601 time")
    purge.add_argument("--platform", help="only this platform's dead letters")
    add_settings_flags(purge, CommonSettings)


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


def _start(
    settings: CommonSettings, process: str, *, kafka: bool = True, redis: bool = True
) -> None:
    """Logging first (so the warning below is in the process's format), then the
    unknown-variable warning, then whether the services it needs accept connections."""
    configure_logging(settings, process=process)
    unknown = unknown_variable_report(os.environ)
    if unknown:
        log.warning("unknown SOCKETHUB_ variables, ignored", variables=unknown)
    check_services(
        kafka=settings.kafka_bootstrap if kafka else None,
        redis=settings.redis_url if redis else None,
    )


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "dev":
        from sockethub.dev import DevPorts, run_dev

        dev_settings = settings_from_args(GatewaySettings, args)
        # dev starts its own Kafka and Redis unless told where they are
        given = dev_settings.model_fields_set
        _start(dev_settings, "dev", kafka="kafka_bootstrap" in given, redis="redis_url" in given)
        return run_dev(
            dev_settings,
            state_dir=args.state_dir,
            ports=DevPorts(args.kafka_port, args.kafka_controller_port, args.redis_port),
        )
    if args.command == "provision":
        from sockethub.devstack.provision import provision

        provision(tests=args.tests)
        return 0
    if args.command == "gateway":
        from gateway.server import serve

        gateway_settings = settings_from_args(GatewaySettings, args)
        _start(gateway_settings, "gateway")
        dead_letters = None
        if gateway_settings.admin_token is not None:
            from sockethub.dlq import AdminDeadLetters

            dead_letters = AdminDeadLetters(gateway_settings)
        serve(gateway_settings, dead_letters)
        return 0
    if args.command == "runner":
        from platform_runners.process import run_runner
        from platform_runners.registry import known_platforms

        runner_settings = settings_from_args(RunnerSettings, args)
        # an unknown platform is a usage error (exit 2) whatever the services' state
        usable = args.platform in known_platforms()
        _start(runner_settings, f"runner:{args.platform}", kafka=usable, redis=usable)
        return run_runner(runner_settings, args.platform)
    if args.command == "replay":
        from sockethub.replay import RECORD_TYPES, Filters, check_target, run

        filters = Filters(
            session=args.session, actor=args.actor, platform=args.platform,
            types=frozenset(args.types or RECORD_TYPES), since=args.since, until=args.until,
        )  # fmt: skip
        replay_settings = settings_from_args(CommonSettings, args)
        check_target(replay_settings, args.to_topic, force=args.force)
        _start(replay_settings, "replay", redis=False)
        return run(replay_settings, filters, fmt=args.format, follow=args.follow,
                   to_topic=args.to_topic, force=args.force)  # fmt: skip
    if args.command == "topics":
        import asyncio

        from schemas.topics import TopicLayout
        from sockethub.runtime.kafka_clients import TopicSetupError, ensure_topics

        topic_settings = settings_from_args(CommonSettings, args)
        _start(topic_settings, "topics", redis=False)
        ids = [i.strip() for i in args.gateway_ids.split(",") if i.strip()]
        specs = TopicLayout(topic_settings).specs(topic_settings.platform_ids(), ids)
        forced = topic_settings.model_copy(update={"create_topics": True})
        try:
            created = asyncio.run(ensure_topics(forced, specs))
        except TopicSetupError as exc:
            raise StackError(str(exc)) from None
        print(f"{len(created)} topics created, {len(specs) - len(created)} already there")
        return 0
    if args.command == "dlq":
        return _dlq(args)
    if args.command == "runners":
        from sockethub.dev import run_runners

        runners_settings = settings_from_args(RunnerSettings, args)
        _start(runners_settings, "runners")
        return run_runners(runners_settings)
    raise AssertionError(args.command)


def _dlq(args: argparse.Namespace) -> int:
    from sockethub import dlq

    action = args.dlq_action
    if action == "redrive" and bool(args.ids) == bool(args.all):
        raise StackError("dlq redrive: give dead-letter ids, or --all --platform P")
    if action == "redrive" and args.all and not args.platform:
        raise StackError("dlq redrive --all needs --platform")
    settings = settings_from_args(CommonSettings, args)
    _start(settings, "dlq", redis=action == "redrive")
    if action == "list":
        filters = dlq.DlqFilters(
            platform=args.platform, reasons=frozenset(args.reason or ()), session=args.session,
            since=args.since, until=args.until,
        )  # fmt: skip
        return dlq.run(settings, "list", filters=filters, fmt=args.format)
    if action == "show":
        return dlq.run(settings, "show", ids=args.ids)
    if action == "redrive":
        return dlq.run(settings, "redrive", ids=args.ids, platform=args.platform,
                       since=args.since, force=args.force)  # fmt: skip
    return dlq.run(settings, "purge", before=args.before, platform=args.platform)


if __name__ == "__main__":
    sys.exit(main())
