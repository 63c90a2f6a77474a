"""The ``redbeat`` command line, also ``celery -A proj redbeat ...``.  Built on :mod:`redbeat.api`.

Where the schedule is comes from ``--url``/``--prefix`` (or their environment
variables), else from a Celery app's settings: ``-A proj`` here, or the app
Celery's own ``-A`` loaded when this group runs as a Celery sub-command.

Every input is parsed and checked before anything is written, and errors
are one line.  Exit codes: 0 ok, 1 not found or invalid (or, for ``check``,
problems found), 2 usage.  Colours only on a terminal; passwords in URLs are
never printed.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone, tzinfo
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
import redis
from celery import Celery
from celery.schedules import BaseSchedule, crontab

from . import converters, humanize
from .api import (
    EntryInfo,
    Problem,
    ScheduleClient,
    check_policy,
    check_task_name,
    entry_item,
    make_policy,
    one_off_finish,
)
from .compat import unreadable_by_2x
from .config import RedBeatConfig, masked_url
from .conflicts import conflict
from .entry import RedBeatSchedulerEntry
from .errors import ConfigurationError, DefinitionError, EntryNotFound, RedBeatError
from .policy import MISSED_POLICIES, ON_FINISH, Policy
from .redisbeat_import import read_members
from .schedules import rrule

FC = TypeVar('FC', bound=Callable[..., Any])

#: The word that clears a policy option in ``edit`` (the app's default applies again).
UNSET = 'none'
#: Policy field -> the option that sets it (for error messages).
OPTION_OF = {
    'timezone': '--tz', 'missed': '--missed', 'missed_limit': '--missed-limit',
    'catchup_window': '--catchup-window', 'start_at': '--start-at', 'end_at': '--end-at',
    'max_runs': '--max-runs', 'on_finish': '--on-finish', 'jitter': '--jitter',
    'anchor': '--anchor', 'history': '--history',
}  # fmt: skip


#: What ``show`` says of an entry from ``beat_schedule``.
STATIC_NOTE = 'beat_schedule in the Celery config (beat restores it from there when it starts)'


class Failure(click.ClickException):
    """Not found or invalid: a one-line error and exit code 1."""

    exit_code = 1


def fail(message: str) -> NoReturn:
    raise Failure(message)


def _note(message: str) -> None:
    """A line on stderr that does not change the outcome (stdout stays parseable)."""
    click.echo(f'note: {message}', err=True)


def _warn_static(schedule: ScheduleClient, names: Iterable[str]) -> None:
    """Changing an entry from ``beat_schedule`` lasts only until beat restarts: say so."""
    statics = schedule.statics()
    for name in names:
        if name in statics:
            click.echo(
                f'warning: {name} comes from beat_schedule in the Celery config; beat '
                'restores it from there when it starts, so make this change there too',
                err=True,
            )


@contextmanager
def _translated() -> Iterator[None]:
    """redbeat and Redis errors as one-line CLI errors with the right exit code."""
    try:
        yield
    except EntryNotFound as exc:
        raise Failure(str(exc)) from None
    except ConfigurationError as exc:
        raise click.UsageError(str(exc)) from None
    except RedBeatError as exc:
        raise Failure(str(exc)) from None
    except redis.RedisError as exc:
        raise Failure(f'Redis error: {exc}') from None


class _Group(click.Group):
    """A group whose commands report redbeat and Redis errors as one-liners."""

    def invoke(self, ctx: click.Context) -> Any:
        with _translated():
            return super().invoke(ctx)


class State:
    """What the group options say; builds the :class:`ScheduleClient` on first use."""

    def __init__(
        self, url: str | None, prefix: str | None, app: Celery | None, url_from: str = '--url'
    ) -> None:
        self.url = url
        self.prefix = prefix
        self.app = app
        #: Where the URL came from (``--url`` or the environment variable), for errors.
        self.url_from = url_from
        self._schedule: ScheduleClient | None = None

    @property
    def schedule(self) -> ScheduleClient:
        if self._schedule is None:
            self._schedule = self._make()
        return self._schedule

    def _app_config(self) -> RedBeatConfig | None:
        """The app's redbeat settings, if it has usable ones (Celery's default app has not)."""
        if self.app is None:
            return None
        try:
            return ScheduleClient.from_app(self.app).config
        except ConfigurationError:
            return None

    def _make(self) -> ScheduleClient:
        if self.url:
            base = self._app_config()
            prefix = self.prefix or (base.key_prefix if base else None)
            tz = base.timezone if base else 'UTC'
            try:
                return ScheduleClient.from_url(self.url, prefix, timezone=tz, app=self.app)
            except ConfigurationError as exc:
                # The user typed an option (or set a variable), not a Celery setting.
                raise click.UsageError(f'{self.url_from}: {exc.problem}') from None
        if self.app is None:
            raise click.UsageError(
                'say where the schedule is: --url (or REDBEAT_REDIS_URL), or -A/--app PROJ'
            )
        schedule = ScheduleClient.from_app(self.app)
        if self.prefix and self.prefix != schedule.config.key_prefix:
            return ScheduleClient.from_url(
                schedule.config.redis_url, self.prefix, timezone=schedule.config.timezone,
                app=self.app,
            )  # fmt: skip
        return schedule


def _load_app(name: str) -> Celery:
    from celery.app.utils import find_app

    try:
        app: Celery = find_app(name)
    except Exception as exc:  # ImportError, AttributeError, celery's own errors
        raise click.UsageError(f'-A/--app {name!r}: cannot load a Celery app: {exc}') from None
    return app


def _version_message() -> str:
    """``--version``: this package's version, where it is imported from, any conflict."""
    from . import __version__
    from .conflicts import DISTRIBUTION

    where = Path(__file__).resolve().parent
    message = f'redbeat {__version__} ({DISTRIBUTION}, import package in {where})'
    problem = conflict()
    return message if problem is None else f'{message}\nWARNING: {problem}'


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(_version_message())
        ctx.exit()


@click.group('redbeat', cls=_Group)
@click.option('--url', envvar='REDBEAT_REDIS_URL', help='Redis URL of the schedule.')
@click.option(
    '--prefix',
    envvar='REDBEAT_KEY_PREFIX',
    help="Key prefix (default 'redbeat:', '{redbeat}:' on Redis Cluster).",
)
@click.option('-A', '--app', 'app_name', help='Celery app to read the settings from.')
@click.option(
    '--version',
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_version,
    help='Show the version (and any install conflict).',
)
@click.pass_context
def main(ctx: click.Context, url: str | None, prefix: str | None, app_name: str | None) -> None:
    """Manage the redbeat schedule stored in Redis."""
    # As a Celery sub-command, ctx.obj is Celery's CLIContext holding the -A app.
    app = _load_app(app_name) if app_name else getattr(ctx.obj, 'app', None)
    from_env = ctx.get_parameter_source('url') == click.core.ParameterSource.ENVIRONMENT
    ctx.obj = State(url, prefix, app, 'REDBEAT_REDIS_URL' if from_env else '--url')


#: The same group, registered as ``celery redbeat`` (entry point ``celery.commands``).
celery_command = main


def _schedule() -> ScheduleClient:
    state = click.get_current_context().find_object(State)
    if state is None:  # a command invoked without the group
        raise click.UsageError('run the commands through the redbeat group')
    return state.schedule


# --- output helpers ------------------------------------------------------------


def _colour() -> bool:
    """Colours only on a terminal, and never with ``NO_COLOR`` set (https://no-color.org)."""
    return sys.stdout.isatty() and not os.environ.get('NO_COLOR')


def _paint(text: str, **style: Any) -> str:
    """``text`` styled only when colours are on (:func:`_colour`)."""
    if _colour():
        return click.style(text, **style)
    return text


def _table(rows: Sequence[Sequence[str]], colours: Sequence[str | None] = ()) -> None:
    """Aligned columns; row ``i`` painted ``colours[i]`` (padding before paint)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for index, row in enumerate(rows):
        line = '  '.join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
        colour = colours[index] if index < len(colours) else None
        click.echo(_paint(line, fg=colour, bold=index == 0) if colour or index == 0 else line)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _words(info: EntryInfo) -> str:
    return humanize.describe(info.schedule, info.tz) if info.schedule is not None else '-'


def _json_of(info: EntryInfo) -> dict[str, Any]:
    """An entry for ``--json`` output: plain JSON, schedule in stored form and in words."""
    out: dict[str, Any] = {'name': info.name, 'key': info.key, 'error': info.error}
    if info.error is None:
        out.update(info.as_item())
        out['schedule_text'] = _words(info)
    due = info.next_due
    out['score'] = info.score
    out['next_due'] = None if due is None or info.due_now else due.isoformat()
    out['last_run_at'] = None if info.last_run_at is None else info.last_run_at.isoformat()
    out['total_run_count'] = info.total_run_count
    out['missed'] = info.missed
    out['skipped'] = info.skipped
    if info.history is not None:
        out['history'] = [
            {
                'scheduled': None if d.scheduled is None else d.scheduled.isoformat(),
                'sent': None if d.sent is None else d.sent.isoformat(),
                'task_id': d.task_id,
                'outcome': d.outcome,
            }
            for d in info.history
        ]
    return out


def _count(n: int, noun: str) -> str:
    """``1 entry``, ``2 entries``, ``3 problems``."""
    if n == 1:
        return f'1 {noun}'
    return f'{n} {noun[:-1]}ies' if noun.endswith('y') else f'{n} {noun}s'


def _echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False, default=str))


# --- list / show ----------------------------------------------------------------


def _enabled_options(enabled_help: str, disabled_help: str) -> Callable[[FC], FC]:
    """``--enabled`` and ``--disabled`` as two flags, so giving both is an error, not the last."""

    def decorate(func: FC) -> FC:
        func = click.option('--disabled', 'disabled_flag', is_flag=True, help=disabled_help)(func)
        return click.option('--enabled', 'enabled_flag', is_flag=True, help=enabled_help)(func)

    return decorate


def _enabled_choice(enabled: bool, disabled: bool) -> bool | None:
    """True for --enabled, False for --disabled, None for neither; both is a usage error."""
    if enabled and disabled:
        raise click.UsageError('give --enabled or --disabled, not both')
    return True if enabled else False if disabled else None


@main.command('list')
@click.option('--pattern', default='*', show_default=True, help='Glob on entry names.')
@click.option('--task', help='Glob on task names.')
@_enabled_options('Only enabled entries.', 'Only disabled entries.')
@click.option('--json', 'as_json', is_flag=True, help='JSON for scripts.')
def list_command(
    pattern: str, task: str | None, enabled_flag: bool, disabled_flag: bool, as_json: bool
) -> None:
    """List entries: schedule in words, zone, next and last run, run count.

    Times are in the entry's own time zone when it has one (--tz), else UTC.
    ZONE is the zone its cron fields are read in: its own, else the Celery
    app's ``timezone`` ("app": known only with -A).
    """
    enabled = _enabled_choice(enabled_flag, disabled_flag)
    schedule = _schedule()
    infos = sorted(schedule.entries(pattern, enabled=enabled, task=task), key=lambda i: i.name)
    if as_json:
        _echo_json([_json_of(i) for i in infos])
        return
    if not infos:
        click.echo('no entries')
        return
    now = _now()
    rows: list[tuple[str, ...]] = [
        ('NAME', 'TASK', 'SCHEDULE', 'ZONE', 'ENABLED', 'NEXT RUN', 'LAST RUN', 'RUNS')
    ]
    colours: list[str | None] = [None]
    app_zone = _app_zone(schedule)
    for info in infos:
        rows.append(_list_row(info, now, app_zone))
        colours.append('red' if info.error else None if info.enabled else 'yellow')
    _table(rows, colours)


def _has_run(info: EntryInfo) -> bool:
    """A new entry's meta records its save time as last run; it has not run yet."""
    return info.last_run_at is not None and info.total_run_count > 0


def _clip(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 3] + '...'


def _app_zone(schedule: ScheduleClient) -> str:
    """The zone beat reads an entry's cron fields in when it has none: the app's ``timezone``."""
    return f'{schedule.config.timezone} (app)' if schedule.app is not None else 'app'


def _zone_text(info: EntryInfo, app_zone: str) -> str:
    """The zone an entry's wall times are read in: its own, a rule's start's, the app's."""
    if info.policy.timezone:
        return info.policy.timezone
    if isinstance(info.schedule, crontab):
        return app_zone
    if isinstance(info.schedule, rrule) and info.schedule.dtstart is not None:
        return str(info.schedule.dtstart.tzinfo)
    return '-'  # an interval or solar schedule has no wall time


def _list_row(info: EntryInfo, now: datetime, app_zone: str) -> tuple[str, ...]:
    if info.error:
        return (info.name, '-', _clip('ERROR: ' + info.error), '-', '-', '-', '-', '-')
    return (
        info.name,
        info.task or '-',
        _words(info),
        _zone_text(info, app_zone),
        'yes' if info.enabled else 'no',
        humanize.next_run(info.next_due, info.score, now, info.tz),
        humanize.relative(info.last_run_at, now) if _has_run(info) else '-',
        str(info.total_run_count),
    )


@main.command()
@click.argument('name')
@click.option('--json', 'as_json', is_flag=True, help='JSON for scripts.')
def show(name: str, as_json: bool) -> None:
    """Everything about one entry: policy, counters, latest dispatches, raw definition and meta."""
    schedule = _schedule()
    info = schedule.get(name)
    static = name in schedule.statics()
    if as_json:
        _echo_json(
            _json_of(info) | {'definition': info.definition, 'meta': info.meta, 'static': static}
        )
        return
    now = _now()
    lines = [('name', info.name), ('key', info.key)]
    if static:
        lines.append(('source', _paint(STATIC_NOTE, fg='yellow')))
    if info.error:
        lines.append(('error', _paint(info.error, fg='red')))
    else:
        lines += [
            ('task', info.task or '-'),
            ('schedule', f'{_words(info)}  [{info.schedule!r}]'),
            ('args', json.dumps(info.args)),
            ('kwargs', json.dumps(info.kwargs)),
            ('options', json.dumps(info.options)),
            ('enabled', 'yes' if info.enabled else _paint('no', fg='yellow')),
        ]
        described = humanize.describe_policy(info.policy)
        lines.append(('policy', 'default (the app settings)' if not described else ''))
        lines += [('  ' + label, words) for label, words in described]
    tz = info.tz
    lines += [
        ('score', 'not in the schedule' if info.score is None else repr(info.score)),
        ('next run', humanize.next_run(info.next_due, info.score, now, tz)),
        ('last run', _last_run(info.last_run_at, now, tz) if _has_run(info) else 'never'),
        ('runs', str(info.total_run_count)),
        ('missed', _counted(info.missed, 'too late for the catch-up window')),
        ('skipped', _counted(info.skipped, 'left out by the missed-run policy')),
        ('definition', info.definition if info.definition is not None else '-'),
        ('meta', info.meta if info.meta is not None else '-'),
    ]
    if info.policy.to_json() is not None:
        lines.insert(-1, ('policy json', info.policy.to_json() or ''))
    for label, value in lines:
        click.echo(f'{label + ":":<15}{value}'.rstrip())
    _history_table(info, tz)


def _counted(count: int, why: str) -> str:
    """A counter, with what it counts only when there is something to explain."""
    return f'{count} ({why})' if count else '0'


def _history_table(info: EntryInfo, tz: tzinfo | None) -> None:
    """The latest dispatches, newest first."""
    if not info.history:
        click.echo('history:       none recorded')
        return
    click.echo(f'history:       latest {len(info.history)}, newest first')
    rows: list[tuple[str, ...]] = [('  SCHEDULED', 'SENT', 'TASK ID', 'OUTCOME')]
    colours: list[str | None] = [None]
    for record in info.history:
        rows.append((
            '  ' + humanize.absolute(record.scheduled, tz),
            humanize.absolute(record.sent, tz),
            record.task_id or '-',
            record.outcome,
        ))  # fmt: skip
        colours.append(None if record.outcome == 'sent' else 'red')
    _table(rows, colours)


def _last_run(moment: datetime | None, now: datetime, tz: tzinfo | None = None) -> str:
    if moment is None:
        return '-'
    return f'{humanize.relative(moment, now)} ({humanize.absolute(moment, tz)})'


# --- add / edit -----------------------------------------------------------------


def _schedule_options(func: FC) -> FC:
    """--every / --cron / --rrule / --at and --tz, shared by add and edit."""
    for option in reversed([
        click.option('--every', help='Interval: 30s, 5m, 1h, 1d, 1h30m.'),
        click.option('--cron', help='Five crontab fields: "*/5 * * * *".'),
        click.option('--rrule', 'rrule_text', help='RFC 5545 rule: "FREQ=DAILY;BYHOUR=3".'),
        click.option('--at', help='Run once at this time: 2027-01-01T09:00; the entry then '
                                  'disables itself (see --delete-after).'),
        click.option('--tz', help="The entry's IANA time zone (Europe/Paris): cron fields, "
                                  'times without an offset and listings use it.'),
        click.option('--delete-after', is_flag=True,
                     help='With --at: delete the entry once it ran (default: disable it).'),
    ]):  # fmt: skip
        func = option(func)
    return func


def _policy_options(func: FC) -> FC:
    """The scheduling policy options, shared by add and edit (``none`` unsets one in edit)."""
    for option in reversed([
        click.option('--missed', help='When runs were missed: once (default), skip or all.'),
        click.option('--missed-limit', help='With --missed all: send at most N missed runs.'),
        click.option('--catchup-window',
                     help='Runs older than this are not sent (counted as missed): 10m.'),
        click.option('--start-at', help='No run before this time: 2027-01-01T00:00.'),
        click.option('--end-at', help='No run after this time: 2027-12-31T23:59.'),
        click.option('--max-runs', help='Finish after N runs.'),
        click.option('--on-finish', help='When no run is left: keep, disable or delete.'),
        click.option('--jitter', help='Delay each run by up to this much (deterministic): 30s.'),
        click.option('--anchor', help='Intervals only: run at anchor + k * interval.'),
        click.option('--history', help='Keep the last N dispatch records.'),
    ]):  # fmt: skip
        func = option(func)
    return func


class _Clear:
    """An option given as ``none``: unset that policy field."""


CLEAR = _Clear()


def _whole(option: str, text: str | None) -> int | _Clear | None:
    if text is None:
        return None
    if text.strip().lower() == UNSET:
        return CLEAR
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        fail(f'{option} {text!r}: must be a whole number >= 0')
    return value


def _seconds(option: str, text: str | None) -> float | _Clear | None:
    if text is None:
        return None
    if text.strip().lower() == UNSET:
        return CLEAR
    try:
        return humanize.parse_duration(text, allow_zero=True)
    except ValueError as exc:
        fail(f'{option} {exc}')


def _choice(option: str, text: str | None, allowed: Sequence[str]) -> str | _Clear | None:
    if text is None:
        return None
    if text.strip().lower() == UNSET:
        return CLEAR
    if text not in allowed:
        fail(f'{option} {text!r}: must be one of {", ".join(allowed)}')
    return text


def _time_option(option: str, text: str | None, tz: tzinfo) -> datetime | _Clear | None:
    """A date and time option; without an offset it is read in ``tz``."""
    if text is None:
        return None
    if text.strip().lower() == UNSET:
        return CLEAR
    with _converted():
        moment = converters.parse_datetime(option, text)
    if moment.tzinfo is not None:
        return moment
    return converters.noted_wall_time(option, moment, tz, _note)


def policy_changes(
    tz_name: str | None, stored_tz: str | None, values: dict[str, str | None]
) -> dict[str, Any]:
    """The policy fields the options set, checked one by one (``CLEAR`` to unset one).

    ``values`` maps policy field names to the option text given (None: not
    given).  Times without an offset are read in ``--tz``, else the entry's
    stored zone, else UTC.
    """
    changes: dict[str, Any] = {}
    if tz_name is not None:
        changes['timezone'] = CLEAR if tz_name.strip().lower() == UNSET else tz_name
        if tz_name.strip().lower() != UNSET:
            _zone(tz_name)
    zone_name = tz_name if tz_name and tz_name.strip().lower() != UNSET else stored_tz
    zone = _zone(zone_name)
    for field in ('missed_limit', 'max_runs', 'history'):
        changes[field] = _whole(OPTION_OF[field], values[field])
    for field in ('catchup_window', 'jitter'):
        changes[field] = _seconds(OPTION_OF[field], values[field])
    changes['missed'] = _choice('--missed', values['missed'], MISSED_POLICIES)
    changes['on_finish'] = _choice('--on-finish', values['on_finish'], ON_FINISH)
    for field in ('start_at', 'end_at', 'anchor'):
        changes[field] = _time_option(OPTION_OF[field], values[field], zone)
    return {k: v for k, v in changes.items() if v is not None}


def _apply(name: str, stored: Policy, changes: dict[str, Any], sched: BaseSchedule) -> Policy:
    """``stored`` with ``changes`` applied; errors name the option."""
    fields = {f.name: getattr(stored, f.name) for f in dataclasses.fields(stored)}
    fields = {k: v for k, v in fields.items() if v is not None}
    for key, value in changes.items():
        if value is CLEAR:
            fields.pop(key, None)
        else:
            fields[key] = value
    try:
        policy = make_policy(name, fields)  # the API's checks (end after start, ...)
    except DefinitionError as exc:
        reason = exc.reason
        for field, option in OPTION_OF.items():
            reason = reason.replace(field, option)
        fail(reason)
    try:
        check_policy(name, sched, policy)
    except DefinitionError:  # the one policy that must fit the schedule: said with options
        fail('--anchor applies only to --every schedules (intervals)')
    return policy


def _entry_options(func: FC) -> FC:
    """--args / --kwargs / --queue, shared by add and edit."""
    for option in reversed([
        click.option('--args', 'args_json', help='Positional arguments as a JSON list.'),
        click.option('--kwargs', 'kwargs_json', help='Keyword arguments as a JSON object.'),
        click.option('--queue', help='Queue to send the task to.'),
    ]):  # fmt: skip
        func = option(func)
    return func


def parse_schedule(
    every: str | None, cron: str | None, rrule_text: str | None, at: str | None, tz: str | None,
    now: datetime | None = None,
) -> BaseSchedule | None:  # fmt: skip
    """The schedule the options describe (None if none); usage error for two of them."""
    with _converted():
        return converters.parse_schedule(every, cron, rrule_text, at, tz, now or _now(), _note)


@contextmanager
def _converted() -> Iterator[None]:
    """converters' errors as the command's: a usage error for options that conflict."""
    try:
        yield
    except converters.Conflict as exc:
        raise click.UsageError(str(exc)) from None
    except converters.ConversionError as exc:
        fail(str(exc))


def _zone(name: str | None) -> tzinfo:
    with _converted():
        return converters.zone_option(name)


def _json_arg(option: str, text: str | None, kind: type) -> Any:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError as exc:
        fail(f'{option} is not valid JSON: {exc}')
    if not isinstance(value, kind):
        wanted = 'a JSON list' if kind is list else 'a JSON object'
        fail(f'{option} must be {wanted}, got {text}')
    return value


def _task(name: str, task: str) -> str:
    try:
        return check_task_name(name, task)
    except DefinitionError as exc:
        fail(exc.reason)


def _policy_values(**given: str | None) -> dict[str, str | None]:
    return given


@main.command()
@click.argument('name')
@click.argument('task')
@_schedule_options
@_entry_options
@_policy_options
@click.option('--disabled', is_flag=True, help='Store it disabled (paused).')
def add(name: str, task: str, every: str | None, cron: str | None, rrule_text: str | None,
        at: str | None, tz: str | None, delete_after: bool, args_json: str | None,
        kwargs_json: str | None, queue: str | None, missed: str | None,
        missed_limit: str | None, catchup_window: str | None, start_at: str | None,
        end_at: str | None, max_runs: str | None, on_finish: str | None, jitter: str | None,
        anchor: str | None, history: str | None, disabled: bool) -> None:  # fmt: skip
    """Add an entry (or replace its definition and policy; its run state is kept).

    With --at the entry runs once, then disables itself (--delete-after: deletes
    itself).  Policy options left out follow the app settings.
    """
    _task(name, task)
    sched = parse_schedule(every, cron, rrule_text, at, tz)
    if sched is None:
        raise click.UsageError('give a schedule: --every, --cron, --rrule or --at')
    if delete_after and at is None:
        fail('--delete-after needs --at (a one-off entry)')
    changes = policy_changes(tz, None, _policy_values(
        missed=missed, missed_limit=missed_limit, catchup_window=catchup_window,
        start_at=start_at, end_at=end_at, max_runs=max_runs, on_finish=on_finish,
        jitter=jitter, anchor=anchor, history=history,
    ))  # fmt: skip
    if at is not None:
        _one_off(changes, delete_after)
    schedule = _schedule()
    pinned = cron is not None and _cron_zone(schedule, tz, changes)
    policy = _apply(name, Policy(), changes, sched)
    args = _json_arg('--args', args_json, list)
    kwargs = _json_arg('--kwargs', kwargs_json, dict)
    options = {'queue': queue} if queue else {}
    entry = schedule.entry(
        name, task, sched, args, kwargs, options, enabled=not disabled, policy=policy
    )
    schedule.save([entry])
    _saved(entry)
    if pinned:
        _note(PINNED_UTC)
    _warn_static(schedule, [name])


def _one_off(changes: dict[str, Any], delete_after: bool) -> None:
    """A one-off cleans up after itself: disabled (or deleted) once it ran."""
    if delete_after and changes.get('on_finish') not in (None, 'delete'):
        fail('--delete-after and --on-finish disagree; give one of them')
    changes['on_finish'] = one_off_finish(changes.get('on_finish'), delete_after)


def _saved(entry: RedBeatSchedulerEntry) -> None:
    state = '' if entry.enabled else ' (disabled)'
    words = humanize.describe(entry.schedule, entry.policy.tz)
    click.echo(f'saved {entry.name}: {entry.task} {words}{state}')


@main.command()
@click.argument('name')
@click.option('--task', help='New task name.')
@_schedule_options
@_entry_options
@_policy_options
@_enabled_options('Enable it.', 'Disable it.')
def edit(name: str, task: str | None, every: str | None, cron: str | None,
         rrule_text: str | None, at: str | None, tz: str | None, delete_after: bool,
         args_json: str | None, kwargs_json: str | None, queue: str | None,
         missed: str | None, missed_limit: str | None, catchup_window: str | None,
         start_at: str | None, end_at: str | None, max_runs: str | None,
         on_finish: str | None, jitter: str | None, anchor: str | None, history: str | None,
         enabled_flag: bool, disabled_flag: bool) -> None:  # fmt: skip
    """Change fields of an existing entry; the others keep their values.

    A policy option given as 'none' unsets it (the app settings apply again).
    Nothing is written when the entry already is as given.
    """
    enabled = _enabled_choice(enabled_flag, disabled_flag)
    if task is not None:
        _task(name, task)
    if delete_after and at is None:
        fail('--delete-after needs --at (a one-off entry)')
    values = _policy_values(
        missed=missed, missed_limit=missed_limit, catchup_window=catchup_window,
        start_at=start_at, end_at=end_at, max_runs=max_runs, on_finish=on_finish,
        jitter=jitter, anchor=anchor, history=history,
    )  # fmt: skip
    policy_changes(tz, None, values)  # check the options before reading anything
    args = _json_arg('--args', args_json, list)
    kwargs = _json_arg('--kwargs', kwargs_json, dict)
    schedule = _schedule()
    pinned: list[bool] = []

    def change(info: EntryInfo) -> RedBeatSchedulerEntry:
        """The edited entry from the stored one (again if it changed under the edit)."""
        stored_tz = info.policy.timezone
        at_tz = tz if tz is not None and tz.strip().lower() != UNSET else None
        if at_tz is None and at is not None and converters.is_naive(at):
            at_tz = stored_tz  # a time without an offset is read in the entry's zone
        sched = parse_schedule(every, cron, rrule_text, at, at_tz)
        changes = policy_changes(tz, stored_tz, values)
        if at is not None:
            _one_off(changes, delete_after)
        if cron is not None and stored_tz is None and _cron_zone(schedule, tz, changes):
            pinned.append(True)
        new_schedule = sched or info.schedule
        assert new_schedule is not None  # a readable entry has a schedule
        policy = _apply(name, info.policy, changes, new_schedule)
        options = dict(info.options) | ({'queue': queue} if queue else {})
        entry = schedule.entry(
            name, task or info.task or '', new_schedule,
            info.args if args is None else args, info.kwargs if kwargs is None else kwargs,
            options, info.enabled if enabled is None else enabled, policy=policy,
        )  # fmt: skip
        try:
            unchanged = entry_item(entry) == info.as_item()
        except (TypeError, ValueError):  # not storable: the save refuses it, naming the field
            unchanged = False
        if unchanged:
            raise _Unchanged
        return entry

    try:
        entry = schedule.update(name, change)
    except _Unchanged:
        click.echo(f'unchanged {name}: it already is as given; nothing written')
        return
    except DefinitionError as exc:
        if exc.key != schedule.config.keys.entry(name) or exc.reason.startswith('is redbeat'):
            raise
        fail(f'{exc}; fix it with add (which replaces the definition)')
    _saved(entry)
    if pinned:
        _note(PINNED_UTC)
    _warn_static(schedule, [name])


class _Unchanged(Exception):
    """``edit`` would write the entry exactly as it is stored."""


def _cron_zone(schedule: ScheduleClient, tz: str | None, changes: dict[str, Any]) -> bool:
    """Without -A, the app's zone is unknown here: pin the cron fields to UTC, and say so.

    Beat reads the cron fields of an entry without a zone in the app's
    ``timezone``; had the command computed the first run in UTC, a non-UTC
    app would send that run at the wrong hour.  Storing UTC makes the entry
    mean what was scheduled.
    """
    if tz is not None or schedule.app is not None:
        return False
    changes['timezone'] = 'UTC'
    return True


#: Said once an entry's cron fields were pinned to UTC (see :func:`_cron_zone`).
PINNED_UTC = (
    'the cron fields are read in UTC and the entry keeps that zone (no --tz, and without -A the '
    "app's timezone is unknown); give --tz or -A PROJ to use another"
)


# --- rm / enable / disable / run --------------------------------------------------


@main.command('rm')
@click.argument('names', nargs=-1, required=True)
@click.option('--yes', '-y', is_flag=True, help='Do not ask before removing several.')
def rm(names: tuple[str, ...], yes: bool) -> None:
    """Remove entries by name or glob ('reports.*'); asks first when a glob matches several.

    Only entries are removed, never redbeat's own keys nor other data under
    the prefix.  Each name or glob that matches no entry is reported, and the
    exit code is then 1 (the entries the others match are removed).
    """
    schedule = _schedule()
    found = schedule.expand(names)  # refuses redbeat's own key names before any delete
    # Names typed out one by one are what the user means; only a glob can surprise.
    if len(found) > 1 and not yes and any(_is_glob(n) for n in names):
        _confirm_removal(found)
    _warn_static(schedule, found)
    flags = schedule.delete_each(found)
    removed = [name for name, ok in zip(found, flags) if ok]
    if removed:
        click.echo(f'removed {_count(len(removed), "entry")}: {", ".join(removed)}')
    unmatched = [n for n in names if not any(fnmatch.fnmatchcase(r, n) for r in removed)]
    if unmatched:
        fail('; '.join(f'no entry matches {n!r}' for n in dict.fromkeys(unmatched)))


def _is_glob(name: str) -> bool:
    return any(char in name for char in '*?[')


def _confirm_removal(names: Sequence[str]) -> None:
    if not sys.stdin.isatty():
        raise click.UsageError(f'{len(names)} entries match; pass --yes to remove them all')
    click.echo('\n'.join(names))
    click.confirm(f'Remove these {len(names)} entries?', abort=True)


@main.command()
@click.argument('name')
def enable(name: str) -> None:
    """Enable (resume) an entry."""
    schedule = _schedule()
    schedule.enable(name)
    _warn_static(schedule, [name])
    click.echo(f'enabled {name}')


@main.command()
@click.argument('name')
def disable(name: str) -> None:
    """Disable (pause) an entry; it keeps its run state."""
    schedule = _schedule()
    schedule.disable(name)
    _warn_static(schedule, [name])
    click.echo(f'disabled {name}')


@main.command()
@click.argument('name')
def run(name: str) -> None:
    """Send an entry's task once, now, without changing its schedule."""
    schedule = _schedule()
    if schedule.app is None:
        raise click.UsageError("run sends through the Celery app's broker: pass -A/--app PROJ")
    task_id = schedule.run_now(name)
    click.echo(f'sent {name}: task id {task_id}')


# --- export / import ------------------------------------------------------------


@main.command()
@click.option('--format', 'fmt', type=click.Choice(['json', 'yaml']), default='json',
              show_default=True)  # fmt: skip
@click.option('-o', '--output', type=click.Path(dir_okay=False), help='File (default stdout).')
@click.option('--pattern', default='*', show_default=True, help='Glob on entry names.')
def export(fmt: str, output: str | None, pattern: str) -> None:
    """Write entries as one document: {name: beat_schedule-like item}."""
    document: dict[str, Any] = {}
    skipped = []
    for info in sorted(_schedule().entries(pattern), key=lambda i: i.name):
        if info.error:
            skipped.append(info)
        else:
            document[info.name] = info.as_item()
    text = _dump(document, fmt)
    if output:
        Path(output).write_text(text, encoding='utf-8')
    else:
        click.echo(text, nl=False)
    for info in skipped:
        click.echo(f'skipped {info.key}: {info.error}', err=True)
    if skipped:
        sys.exit(1)


def _dump(document: dict[str, Any], fmt: str) -> str:
    if fmt == 'json':
        return json.dumps(document, indent=2, ensure_ascii=False) + '\n'
    yaml = _yaml()
    text: str = yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
    return text


def _yaml() -> Any:
    try:
        import yaml
    except ImportError:
        fail('YAML needs PyYAML: pip install "redbeat-scheduler[yaml]"')
    return yaml


#: ``import --format`` values; ``auto`` goes by the file name, else tries JSON, then YAML.
IMPORT_FORMATS = ('auto', 'json', 'yaml', 'redisbeat')


def _read_text(path: str) -> str:
    try:
        with click.open_file(path, encoding='utf-8') as stream:
            text: str = stream.read()
    except (OSError, UnicodeDecodeError) as exc:
        fail(f'{path}: cannot be read: {exc}')
    return text


def _parse_document(path: str, text: str, fmt: str) -> dict[str, Any]:
    """An export document (JSON or YAML): {name: item}."""
    if fmt == 'auto':
        suffix = Path(path).suffix.lower()
        fmt = 'json' if suffix == '.json' else 'yaml' if suffix in ('.yaml', '.yml') else ''
    try:
        if fmt == 'yaml':
            document = _yaml().safe_load(text)
        elif fmt == 'json':
            document = json.loads(text)
        else:  # stdin or another name: JSON needs no extra package, YAML is the fallback
            try:
                document = json.loads(text)
            except ValueError:
                document = _yaml().safe_load(text)
    except Failure:
        raise
    except Exception as exc:  # json.JSONDecodeError, yaml.YAMLError
        fail(f'{path}: cannot be read as {fmt or "JSON or YAML"}: {exc}')
    if not isinstance(document, dict):
        fail(f'{path}: must hold one mapping of entry name -> entry')
    return document


def _redisbeat_document(path: str, text: str) -> dict[str, Any]:
    """A redisbeat schedule (one member per line), read as JSON only; fails naming each
    member it cannot read, and why."""
    document: dict[str, Any] = {}
    errors = []
    for member in read_members(text.splitlines()):
        label = f'member {member.number}' + (f' ({member.name})' if member.name else '')
        if member.error is not None or member.item is None or member.name is None:
            errors.append(f'{label}: {member.error}')
        elif member.name in document:
            errors.append(f'{label}: a second entry named {member.name!r}')
        else:
            document[member.name] = member.item
    if errors:
        fail(
            f'{path}: nothing imported; {"; ".join(errors)}. Only JSON is read, never '
            'pickle: re-create these entries with redbeat add (see docs/migrating.rst)'
        )
    if not document:
        fail(f'{path}: no redisbeat entries (expected the members of its sorted set)')
    return document


@main.command('import')
@click.argument(
    'path',
    metavar='[FILE]',
    required=False,
    type=click.Path(exists=True, dir_okay=False, allow_dash=True),
)
@click.option('--redisbeat-key', metavar='KEY',
              help="Instead of FILE: redisbeat's sorted set KEY on the schedule's Redis "
                   '(its CELERY_REDIS_SCHEDULER_KEY, default celery:beat:order_tasks); '
                   'read as JSON, never unpickled.')  # fmt: skip
@click.option('--format', 'fmt', type=click.Choice(IMPORT_FORMATS), default='auto',
              show_default=True,
              help='json, yaml, or redisbeat: the members of a redisbeat sorted set, one a '
                   'line (redis-cli --raw ZRANGE celery:beat:order_tasks 0 -1).')  # fmt: skip
@click.option('--prune', is_flag=True, help='Remove entries that are not in the file.')
@click.option('--dry-run', is_flag=True, help='Print the plan; write nothing.')
def import_command(
    path: str | None, redisbeat_key: str | None, fmt: str, prune: bool, dry_run: bool
) -> None:
    """Add or update the entries of an export file (JSON or YAML; FILE - reads stdin),
    or of a redisbeat schedule (--format redisbeat FILE, or --redisbeat-key KEY)."""
    if (path is None) == (redisbeat_key is None):
        raise click.UsageError('give FILE or --redisbeat-key, one of them')
    if redisbeat_key is not None and fmt not in ('auto', 'redisbeat'):
        raise click.UsageError('--redisbeat-key reads the redisbeat format; leave out --format')
    schedule = _schedule()
    if redisbeat_key is not None:
        members = schedule.redisbeat_members(redisbeat_key)
        path = redisbeat_key
        document = _redisbeat_document(redisbeat_key, '\n'.join(members))
    elif fmt == 'redisbeat':
        assert path is not None
        document = _redisbeat_document(path, _read_text(path))
    else:
        assert path is not None
        document = _parse_document(path, _read_text(path), fmt)
    entries, errors = [], []
    for name, item in document.items():
        try:
            entries.append(schedule.entry_from_dict(str(name), item))
        except DefinitionError as exc:
            errors.append(str(exc))
    if errors:
        fail(f'{path}: nothing imported; ' + '; '.join(errors))
    plan = schedule.plan_import(entries, prune)
    for sign, name in plan.steps:
        click.echo(f'{sign} {name}')
    changed, removed = plan.changed, plan.removed
    if dry_run:
        click.echo(f'dry run: {len(changed)} to write, {len(removed)} to remove; nothing written')
        return
    schedule.apply_import(plan)
    click.echo(f'imported: {len(changed)} written, {len(removed)} removed')
    _warn_static(schedule, [e.name for e in changed] + removed)


# --- status / check ---------------------------------------------------------------


@main.command()
@click.option('--json', 'as_json', is_flag=True, help='JSON for scripts.')
def status(as_json: bool) -> None:
    """Lock holder, entry counts, the next due entries, Redis eviction policy."""
    schedule = _schedule()
    now = _now()
    view = schedule.overview(now)
    if as_json:
        _echo_json({
            'redis_url': masked_url(schedule.config.redis_url),
            'prefix': schedule.config.key_prefix,
            **{k: getattr(view, k) for k in ('lock_key', 'lock_holder', 'lock_ttl', 'entries',
                                              'due', 'overdue', 'eviction_policy', 'maxmemory')},
            'eviction_risk': view.eviction_risk,
            'upcoming': [[n, d.isoformat() if d else None] for n, d in view.upcoming],
            'last_tick': view.last_tick.isoformat() if view.last_tick else None,
            'ticked_by': view.ticked_by,
        })  # fmt: skip
        return
    click.echo(
        f'redis:     {masked_url(schedule.config.redis_url)} (prefix {schedule.config.key_prefix})'
    )
    click.echo(f'lock:      {_lock_text(view.lock_key, view.lock_holder, view.lock_ttl)}')
    overdue = _paint(f'{view.overdue} overdue', fg='red') if view.overdue else '0 overdue'
    click.echo(f'entries:   {view.entries} ({view.due} due, {overdue})')
    click.echo('next due:' + ('' if view.upcoming else '  -'))
    width = max((len(name) for name, _ in view.upcoming), default=0)
    for name, due in view.upcoming:
        click.echo(f'  {name:<{width}}  {_when(due, now)}')
    click.echo(
        f'eviction:  {_eviction_text(view.eviction_policy, view.maxmemory, view.eviction_risk)}'
    )
    click.echo(f'last tick: {_tick_text(view.last_tick, view.ticked_by, now)}')


def _tick_text(last: datetime | None, by: str | None, now: datetime) -> str:
    if last is None:
        return 'none recorded'
    return f'{(now - last).total_seconds():.1f}s ago by {by}'


@main.command()
@click.option(
    '--max-tick-age',
    type=click.FloatRange(min=0),
    metavar='SECONDS',
    help='Oldest last tick that is healthy (default: 60, or the lock timeout if '
    'longer; without a lock beat_max_loop_interval + 60).',
)
@click.option(
    '--max-overdue',
    type=click.FloatRange(min=0),
    default=60.0,
    show_default=True,
    metavar='SECONDS',
    help='Longest an entry may stay due unsent.',
)
def health(max_tick_age: float | None, max_overdue: float) -> None:
    """Exit 0 if a leader holds the lock, ticked recently and nothing is overdue; else 1.

    Prints one line: ``ok: ...`` or ``unhealthy: <reason>``.  For liveness and
    readiness probes.
    """
    verdict = _schedule().health(_now(), max_tick_age, max_overdue)
    if not verdict.ok:
        click.echo(f'unhealthy: {verdict.reason}')
        raise SystemExit(1)
    click.echo(f'ok: {verdict.reason}')


@main.command()
@click.option('--count', type=click.IntRange(min=1), default=20, show_default=True)
@click.option('--json', 'as_json', is_flag=True, help='JSON for scripts.')
def events(count: int, as_json: bool) -> None:
    """The latest events beat recorded (with ``redbeat_events`` on), newest first."""
    found = _schedule().events(count)
    if as_json:
        _echo_json([{'id': id_, **fields} for id_, fields in found])
        return
    for _, fields in found:
        rest = ' '.join(f'{k}={v}' for k, v in fields.items() if k not in ('time', 'event'))
        click.echo(f'{fields.get("time", "-")}  {fields.get("event", "-"):<15} {rest}')


def _when(due: datetime | None, now: datetime) -> str:
    """A due time read back from a score (the epoch for score 0, None for -1)."""
    return humanize.next_run(due, -1 if due is None else due.timestamp(), now)


def _lock_text(key: str | None, holder: str | None, ttl: float | None) -> str:
    if key is None:
        return 'disabled (every beat dispatches)'
    if holder is None:
        return _paint(f'{key} is free: no beat holds it', fg='yellow')
    expiry = f'expires in {ttl:.1f}s' if ttl is not None else 'no expiry'
    return f'{key} held by {holder} ({expiry})'


def _eviction_text(policy: str | None, maxmemory: str | None, risk: bool) -> str:
    if policy is None:
        return 'unknown (CONFIG GET is not allowed)'
    if risk:
        return _paint(
            f'WARNING maxmemory-policy {policy} with maxmemory {maxmemory}: Redis may evict '
            'entries; use noeviction or a volatile-* policy', fg='red',
        )  # fmt: skip
    return f'ok (maxmemory-policy {policy})'


@main.command()
@click.option('--fix', is_flag=True, help='Repair what can be repaired without losing data.')
@click.option(
    '--for-2x',
    'for_2x',
    is_flag=True,
    help='Instead: list entries celery-redbeat 2.x cannot read (before a rollback).',
)
def check(fix: bool, for_2x: bool) -> None:
    """Find malformed entries and sorted-set/hash mismatches; exit 1 if any remain."""
    schedule = _schedule()
    if for_2x:
        if fix:
            raise click.UsageError('--fix and --for-2x cannot be combined')
        _check_for_2x(schedule)
        return
    problems = schedule.check()
    installed = conflict()
    if installed is not None:  # not in the schedule, but what runs it: worth failing on
        problems.append(Problem('install-conflict', 'celery-redbeat', installed, False))
    for problem in problems:
        _report(problem)
    fixed = schedule.fix(problems) if fix else 0
    remaining = [p for p in problems if not (fix and p.fixable)]
    if fix:
        click.echo(f'fixed {fixed} of {_count(len(problems), "problem")}')
    if remaining:
        hint = '' if fix or not any(p.fixable for p in problems) else '; run check --fix'
        fail(f'{_count(len(remaining), "problem")}{hint}')
    if not problems:
        click.echo(_paint('ok: no problems found', fg='green'))


def _check_for_2x(schedule: ScheduleClient) -> None:
    """Entries a rolled-back celery-redbeat 2.4.2 beat could not run (see compat.py)."""
    found = 0
    for info in sorted(schedule.entries(), key=lambda i: i.name):
        reason = unreadable_by_2x(info.definition)
        if reason is None:
            continue
        found += 1
        state = '' if info.enabled else ' (disabled: harmless to 2.x until enabled)'
        click.echo(f'{"2x-unreadable":<22}{info.name}: {reason}{state}')
    if found:
        fail(f'{_count(found, "entry")} celery-redbeat 2.x cannot read; change or remove them '
             'before rolling back')  # fmt: skip
    click.echo(_paint('ok: celery-redbeat 2.x can read every entry', fg='green'))


def _report(problem: Problem) -> None:
    mark = 'fixable' if problem.fixable else 'manual'
    click.echo(f'{problem.kind:<22}{problem.name}: {problem.detail} [{mark}]')
