"""Benchmark redbeat against celery-redbeat 2.4.2, in the same run, on private Redis servers.

    python bench/run.py [--sizes 1000,10000,100000] [--quick] [--json out.json] [--sustained]

Starts two redis-servers on free 127.0.0.1 ports (schedule, broker), makes
(once, under ``.bench/``) a virtualenv with celery-redbeat 2.4.2 and the same
celery, kombu and redis-py versions as this interpreter, runs each measurement
in a subprocess of the right interpreter (``bench/scenarios.py``), and prints
the figures with the ratio legacy/ours plus the Redis commands per tick.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import redis

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CACHE = ROOT / '.bench'
LEGACY = 'celery-redbeat==2.4.2'
#: Pinned in the legacy virtualenv to this interpreter's versions.
SHARED = ('celery', 'kombu', 'redis', 'amqp', 'billiard', 'vine', 'python-dateutil', 'packaging')
#: redis-py's C reply parser (the ``hiredis`` extra): pinned too when installed
#: here, so that both packages read replies with the same parser.
OPTIONAL_SHARED = ('hiredis',)
WORKER_TIMEOUT = 3600.0

#: (scenario, impl, N) -> what the worker printed
Results = dict[tuple[str, str, int], dict[str, Any]]


# --- private redis-servers ----------------------------------------------------


#: Scenarios of one tick after an outage (bench/scenarios.py), 100k only on request.
CATCH_UP = ('day', 'years', 'mix')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return int(sock.getsockname()[1])


@contextmanager
def redis_server(name: str) -> Iterator[str]:
    """A redis-server on loopback in a temp dir, no persistence; yields its URL."""
    binary = shutil.which('redis-server')
    if binary is None:
        sys.exit('redis-server is not on PATH (Debian: apt-get install redis-server)')
    workdir = tempfile.mkdtemp(prefix=f'redbeat-bench-{name}-')
    port = free_port()
    argv = [binary, '--bind', '127.0.0.1', '--port', str(port), '--dir', workdir,
            '--save', '', '--appendonly', 'no', '--logfile', 'redis.log']  # fmt: skip
    proc = subprocess.Popen(argv, cwd=workdir, stdout=subprocess.DEVNULL)
    url = f'redis://127.0.0.1:{port}/0'
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=0.5)
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if proc.poll() is not None:
                    sys.exit(f'redis-server {name} exited; see {workdir}/redis.log')
                time.sleep(0.05)
        else:
            sys.exit(f'redis-server {name} did not answer on port {port}')
        client.close()
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)


# --- the celery-redbeat virtualenv ----------------------------------------------


def legacy_python() -> Path:
    """The interpreter of a virtualenv with celery-redbeat 2.4.2 (made once, cached)."""
    pins = [LEGACY] + [f'{name}=={version(name)}' for name in SHARED]
    pins += [f'{name}=={version(name)}' for name in OPTIONAL_SHARED if installed(name)]
    tag = '-'.join(p.split('==')[1] for p in pins[:4])
    venv = CACHE / f'legacy-{tag}'
    python = venv / 'bin' / 'python'
    stamp = venv / 'pins.txt'
    if stamp.exists() and stamp.read_text() == '\n'.join(pins):
        return python
    print(f'bench: creating {venv.relative_to(ROOT)} with {" ".join(pins)}', file=sys.stderr)
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([sys.executable, '-m', 'venv', str(venv)], check=True)
    pip = [str(python), '-m', 'pip', 'install', '--quiet', '--disable-pip-version-check']
    subprocess.run([*pip, *pins], check=True)
    stamp.write_text('\n'.join(pins))
    return python


def installed(name: str) -> bool:
    try:
        version(name)
    except PackageNotFoundError:
        return False
    return True


def parser_name() -> str:
    return f'hiredis {version("hiredis")}' if installed('hiredis') else 'no hiredis'


# --- running the measurements ---------------------------------------------------


@contextmanager
def snapshot() -> Iterator[Path]:
    """A copy of redbeat/ as it is now: one run measures one version of the code."""
    with tempfile.TemporaryDirectory(prefix='redbeat-bench-code-') as tmp:
        ignore = shutil.ignore_patterns('__pycache__', '*.pyc')
        shutil.copytree(ROOT / 'redbeat', Path(tmp) / 'redbeat', ignore=ignore)
        yield Path(tmp)


def run_worker(python: Path, impl: str, scenario: str, n: int, urls: dict[str, str],
               extra: list[str] | None = None) -> dict[str, Any]:  # fmt: skip
    script = HERE / ('lateness.py' if scenario == 'lateness' else 'scenarios.py')
    cmd = [str(python), str(script), '--impl', impl, '--scenario', scenario,
           '--n', str(n), '--redis-url', urls['schedule'], '--broker-url', urls['broker'],
           *(['--ours-root', urls['ours']] if impl == 'ours' else []), *(extra or [])]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
    start = time.monotonic()
    print(f'bench: {scenario:9} {impl:6} n={n:<7}', end=' ', file=sys.stderr, flush=True)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=WORKER_TIMEOUT, env=env)
    except subprocess.TimeoutExpired:
        print('TIMED OUT', file=sys.stderr)
        return {'error': f'timed out after {WORKER_TIMEOUT:.0f}s'}
    print(f'{time.monotonic() - start:7.1f}s', file=sys.stderr)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = '\n'.join(proc.stderr.strip().splitlines()[-15:])
        print(f'bench: {scenario} {impl} n={n} FAILED (exit {proc.returncode}):\n{tail}',
              file=sys.stderr)  # fmt: skip
        return {'error': tail or f'exit {proc.returncode}'}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run whose ``tick_s`` is the median (the lower of two middles), with
    every run's ``tick_s`` under ``repeat_tick_s``; any failed run is reported."""
    failed = [r for r in runs if 'error' in r]
    if failed or len(runs) == 1 or not all('tick_s' in r for r in runs):
        return failed[0] if failed else runs[0]
    ordered = sorted(runs, key=lambda r: r['tick_s'])
    chosen = dict(ordered[(len(ordered) - 1) // 2])
    chosen['repeat_tick_s'] = [r['tick_s'] for r in runs]
    return chosen


def check(result: dict[str, Any], n: int, label: str) -> list[str]:
    """Loud complaints about a result that is wrong rather than slow."""
    problems = []
    for key in (
        'queue_len',
        'single_queue_len',
        'batch_queue_len',
        'lpush_queue_len',
        'published',
        'again_published',
        'again_queue_len',
    ):
        if key in result and result[key] != n:
            problems.append(f'{label}: {key} is {result[key]}, expected {n}')
    for key in ('still_due', 'idle_published'):
        if result.get(key):
            problems.append(f'{label}: {key} is {result[key]}, expected 0')
    if 'stored' in result and result['stored'] < n:
        problems.append(f'{label}: only {result["stored"]} of {n} entries stored')
    return problems


# --- the report -------------------------------------------------------------


def fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return '-'
    if seconds >= 1:
        return f'{seconds:.2f} s'
    if seconds >= 1e-3:
        return f'{seconds * 1e3:.1f} ms'
    return f'{seconds * 1e6:.0f} µs'


def fmt_ratio(value: float | None) -> str:
    return '-' if value is None else f'{value:.2f}'


def fmt_num(value: float | None) -> str:
    return '-' if value is None else f'{value:,.0f}'


#: (label, scenario, key, formatter, per entry?)
FIGURES: list[tuple[str, str, str, Any, bool]] = [
    ('one tick, all N due (end to end)', 'tick', 'tick_s', fmt_time, False),
    ('  per due entry', 'tick', 'tick_s', fmt_time, True),
    ('same tick again (steady state: all N known)', 'tick', 'again_s', fmt_time, False),
    ('  per due entry', 'tick', 'again_s', fmt_time, True),
    ('Redis round trips, tick again (schedule)', 'tick', 'again_rt', fmt_num, False),
    ('first message: after_task_publish', 'tick', 'first_signal_s', fmt_time, False),
    ('first message: in the broker queue', 'tick', 'first_arrival_s', fmt_time, False),
    ('Redis round trips, tick (schedule)', 'tick', 'tick_rt', fmt_num, False),
    ('Redis commands, tick (schedule)', 'tick', 'tick_ncmds', fmt_num, False),
    ('Redis busy in scripts, tick', 'tick', 'tick_script_s', fmt_time, False),
    ('overdue by a day (every minute): one tick', 'day', 'tick_s', fmt_time, False),
    ('  first message: after_task_publish', 'day', 'first_signal_s', fmt_time, False),
    ('overdue since 2000 (every minute): one tick', 'years', 'tick_s', fmt_time, False),
    ('  first message: after_task_publish', 'years', 'first_signal_s', fmt_time, False),
    ('mix interval/crontab/rrule, zones, a day overdue', 'mix', 'tick_s', fmt_time, False),
    ('  first message: after_task_publish', 'mix', 'first_signal_s', fmt_time, False),
    ('idle tick', 'tick', 'idle_s', fmt_time, False),
    ('Redis round trips, idle tick', 'tick', 'idle_rt', fmt_num, False),
    ('Redis commands, idle tick', 'tick', 'idle_ncmds', fmt_num, False),
    ('beat start, N static entries (empty Redis)', 'start', 'start_s', fmt_time, False),
    ('  Redis round trips', 'start', 'start_rt', fmt_num, False),
    ('beat restart, N static entries stored', 'start', 'restart_s', fmt_time, False),
    ('  Redis round trips', 'start', 'restart_rt', fmt_num, False),
    ('save one entry (median of 200)', 'save', 'save1_median_s', fmt_time, False),
    ('bulk save of N entries (legacy: save() loop)', 'save', 'bulk_s', fmt_time, False),
    ('  Redis round trips', 'save', 'bulk_rt', fmt_num, False),
    ('  Redis busy in scripts', 'save', 'bulk_script_s', fmt_time, False),
    ('Redis memory per entry (used_memory freed)', 'tick', 'mem_used_per_entry', fmt_num, False),
    (
        'Redis memory per entry (MEMORY USAGE, hash + zset)',
        'tick',
        'mem_sample_per_entry',
        fmt_num,
        False,
    ),
    ('Redis keys per entry (DBSIZE / N)', 'tick', 'keys_per_entry', fmt_ratio, False),
    ('beat process peak RSS (MiB)', 'tick', 'maxrss_mb', fmt_num, False),
]


BASELINES = [
    ('Celery apply_async alone, per message', 'single_per_msg_s'),
    ('apply_async in producer.batch(), per message', 'batch_per_msg_s'),
    ('ready messages LPUSHed, 20 a round trip, per message', 'lpush_per_msg_s'),
]


def figure_rows(results: Results, sizes: list[int]) -> list[list[str]]:
    rows = []
    for label, scenario, key, fmt, per_entry in FIGURES:
        for n in sizes:
            cells = []
            values = []
            for impl in ('ours', 'legacy'):
                value = results.get((scenario, impl, n), {}).get(key)
                if value is not None and per_entry:
                    value /= n
                values.append(value)
                cells.append(fmt(value))
            if values == [None, None]:
                continue
            ours, legacy = values
            ratio = f'{legacy / ours:.1f}x' if ours and legacy else '-'
            rows.append([label, f'{n:,}', *cells, ratio])
    for n in sizes:
        publish = results.get(('publish', 'ours', n), {})
        for label, key in BASELINES:
            if key in publish:
                rows.append([label, f'{n:,}', fmt_time(publish[key]), '(same celery)', '-'])
    return rows


def target_rows(results: Results, sizes: list[int]) -> list[list[str]]:
    """Issue 3's targets against what was measured (rows only where measured)."""

    def get(scenario: str, impl: str, n: int, key: str) -> Any:
        return results.get((scenario, impl, n), {}).get(key)

    rows = []

    def add(target: str, value: Any, shown: str, ok: bool) -> None:
        if value is not None:
            rows.append([target, shown, 'yes' if ok else 'NO'])

    tick, legacy = get('tick', 'ours', 10_000, 'tick_s'), get('tick', 'legacy', 10_000, 'tick_s')
    add('tick, 10k due <= 1.5 s (first)', tick, fmt_time(tick), tick is not None and tick <= 1.5)
    again = get('tick', 'ours', 10_000, 'again_s')
    add(
        'tick, 10k due <= 1.5 s (again)', again, fmt_time(again), again is not None and again <= 1.5
    )
    if tick and legacy:
        ratio = legacy / tick
        add('tick, 10k due >= 10x faster than legacy', ratio, f'{ratio:.1f}x', ratio >= 10)
    rt = get('tick', 'ours', 10_000, 'tick_rt')
    add('tick, 10k due <= 4 round trips', rt, str(rt), rt is not None and rt <= 4)
    for n in sizes:
        idle = get('tick', 'ours', n, 'idle_ncmds')
        add(f'idle tick <= 3 commands (N={n:,})', idle, str(idle), idle is not None and idle <= 3)
    for n in sizes:
        for key, what in (('first_signal_s', 'signal'), ('first_arrival_s', 'in broker')):
            first = get('tick', 'ours', n, key)
            shown = fmt_time(first)
            add(f'first message ({what}) <= 50 ms (N={n:,})', first, shown, (first or 1) <= 0.05)
    start = get('start', 'ours', 10_000, 'start_s')
    add('start, 10k static entries <= 0.3 s', start, fmt_time(start), (start or 1) <= 0.3)
    bulk = get('save', 'ours', 10_000, 'bulk_s')
    add('bulk save of 10k entries <= 0.3 s', bulk, fmt_time(bulk), (bulk or 1) <= 0.3)
    for n in sizes:
        ours, old = (
            get('tick', 'ours', n, 'mem_used_per_entry'),
            get('tick', 'legacy', n, 'mem_used_per_entry'),
        )
        if ours is not None and old is not None:
            add(
                f'memory per entry <= legacy (N={n:,})',
                ours,
                f'{ours:.0f} B vs {old:.0f} B',
                ours <= old * 1.05,  # used_memory also moves with buffers and caches
            )
    return rows


def table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = '| ' + ' | '.join('{:<%d}' % w for w in widths) + ' |'  # noqa: UP031
    out = [line.format(*header), '|' + '|'.join('-' * (w + 2) for w in widths) + '|']
    out += [line.format(*r) for r in rows]
    return '\n'.join(out)


def command_rows(results: Results, sizes: list[int]) -> list[list[str]]:
    rows = []
    for scenario, prefix, what in (('tick', 'tick', 'tick, all due'),
                                   ('tick', 'again', 'tick again'),
                                   ('tick', 'idle', 'idle tick'),
                                   ('start', 'start', 'beat start'),
                                   ('save', 'save1', 'save one (new)'),
                                   ('save', 'resave1', 're-save one (unchanged)')):  # fmt: skip
        for n in sizes:
            for impl in ('ours', 'legacy'):
                r = results.get((scenario, impl, n), {})
                if f'{prefix}_cmds' not in r:
                    continue
                cmds = ', '.join(f'{k} {v:,}' for k, v in r[f'{prefix}_cmds'].items())
                rows.append([what, f'{n:,}', impl, str(r[f'{prefix}_rt']), cmds or '(none)'])
    return rows


def metrics_report(r: dict[str, Any], n: int) -> list[str]:
    """The cost of metrics table; wrong results (not every occurrence sent, scraped)."""
    print(f'\nMetrics off and on (ours): medians of {r["rounds"]} alternating rounds; '
          f'idle: the median of {r["idle_ticks"]} idle ticks a round; '
          f'load average {", ".join(f"{x:.2f}" for x in r["load"])}\n')  # fmt: skip
    rows = [
        [what, fmt_time(r[f'{key}_off_s']), fmt_time(r[f'{key}_on_s']),
         f'{r[f"{key}_overhead"]:+.1%}']
        for key, what in (('tick', f'One tick, all {n:,} due (steady state), wall'),
                          ('tick_cpu', '  the same, CPU time of the process'),
                          ('idle', 'Idle tick, wall'),
                          ('idle_cpu', '  the same, CPU time of the process'))
    ]  # fmt: skip
    print(table(['figure', 'metrics off', 'metrics on', 'overhead (median of rounds)'], rows))
    problems = [
        f'metrics: a tick sent {sent}, expected {n}'
        for mode in ('off', 'on')
        for sent in r[f'sent_{mode}']
        if sent != n
    ]
    if r['scraped_sent'] != n * (r['rounds'] + 1):
        problems.append(
            f'metrics: scraped {r["scraped_sent"]} sent, expected {n * (r["rounds"] + 1)}'
        )
    return problems


#: Issue 13's send lateness targets: p99 by N (no drift at any N).
LATENESS_TARGETS = {50: 0.020, 1000: 0.250}


def fmt_ms(seconds: float | None) -> str:
    return '-' if seconds is None or seconds != seconds else f'{seconds * 1e3:.1f}'


def drift(series: dict[str, Any]) -> float | None:
    """The rise of p99 over the whole run, fitted (slope per run x runs - 1), seconds."""
    slope = series.get('drift_slope')
    return None if slope is None else slope * (len(series['run_p99']) - 1)


def lateness_report(results: Results) -> list[str]:
    """The lateness tables (bench/lateness.py); runs that went wrong."""
    late = sorted(((n, impl), r) for (s, impl, n), r in results.items() if s == 'lateness')
    done = [(key, r) for key, r in late if 'send' in r]
    if not done:
        return []
    first = done[0][1]
    print(f'\nLateness: N {first.get("schedule", "rrule")} entries due at the same instant, '
          f'{first["runs"]} bursts '
          f'{first["period"]} s apart, real celery beat and worker ({first["worker"]}); '
          'ms after the due instant; drift: fitted rise of the per-burst p99 '
          'from the first burst to the last\n')  # fmt: skip
    rows = []
    for (n, impl), r in done:
        for what, label in (('send', 'in broker'), ('exec', 'task starts')):
            s = r[what]
            later = s.get('later', {})
            rows.append([f'{n:,}', impl, label, fmt_ms(s.get('p50')), fmt_ms(s.get('p99')),
                         fmt_ms(s.get('max')), fmt_ms(later.get('p99')), fmt_ms(later.get('max')),
                         fmt_ms(drift(s))])  # fmt: skip
    columns = ['N', 'impl', 'lateness', 'p50', 'p99', 'max', 'p99, bursts 2+', 'max, 2+', 'drift']
    print(table(columns, rows))
    print('\nPer-burst p99 (ms), burst 1 first\n')
    rows = [
        [f'{n:,}', impl, what, ' '.join(fmt_ms(v) for v in r[what]['run_p99'])]
        for (n, impl), r in done
        for what in ('send', 'exec')
        if 'run_p99' in r[what]
    ]
    print(table(['N', 'impl', 'lateness', 'p99 of each burst'], rows))
    targets = []
    for (n, impl), r in done:
        target = LATENESS_TARGETS.get(n)
        p99, rise = r['send'].get('p99'), drift(r['send'])
        if impl != 'ours' or target is None or p99 is None:
            continue
        targets.append([f'send p99 <= {target * 1e3:.0f} ms (N={n:,})', f'{fmt_ms(p99)} ms',
                        'yes' if p99 <= target else 'NO'])  # fmt: skip
        later = r['send'].get('later', {}).get('p99')
        if later is not None:
            targets.append([f'  the same, bursts 2+ (N={n:,})', f'{fmt_ms(later)} ms',
                            'yes' if later <= target else 'NO'])  # fmt: skip
        if rise is not None:
            # no drift: the fitted rise over the run is within a tenth of the target
            targets.append([f'no drift, send p99 (N={n:,})', f'{fmt_ms(rise)} ms over the run',
                            'yes' if rise <= target / 10 else 'NO'])  # fmt: skip
    if targets:
        print('\nIssue 13 lateness targets (ours)\n')
        print(table(['target', 'measured', 'met'], targets))
    problems = []
    for (n, impl), r in late:
        label = f'lateness/{impl}/n={n}'
        for what in ('send', 'exec'):
            counts = r.get(what, {}).get('counts', [])
            wrong = [(k + 1, c) for k, c in enumerate(counts) if c != n]
            if wrong:
                problems.append(f'{label}: {what} count per burst is not {n}: {wrong}')
            if r.get(what, {}).get('outside'):
                problems.append(f'{label}: {r[what]["outside"]} {what} stamps outside the bursts')
        if r.get('ready_before_due_s', 1) <= 0:
            problems.append(f'{label}: beat was not ready before the first burst')
    return problems


def report(results: Results, sizes: list[int], header: str) -> list[str]:
    """Print the tables; the problems found (wrong results, not slow ones)."""
    problems = [
        line
        for (scenario, impl, n), r in results.items()
        for line in check(r, n, f'{scenario}/{impl}/n={n}')
    ]
    print(f'\n{header}\n')
    columns = ['figure', 'N', 'ours', 'celery-redbeat 2.4.2', 'ratio (legacy/ours)']
    print(table(columns, figure_rows(results, sizes)))
    print(
        '\nRedis round trips and commands to the schedule server (commandstats; '
        'commands run by a Lua script are counted under their own names)\n'
    )
    print(table(['what', 'N', 'impl', 'round trips', 'commands'], command_rows(results, sizes)))
    for (scenario, _, n), r in results.items():
        if scenario != 'sustained' or 'minutes' not in r:
            continue
        print(f'\nSustained: {n:,} entries due every minute (ours)\n')
        rows = [
            [str(m['minute']), fmt_num(m['sent']), fmt_time(m['first_s']), fmt_time(m['last_s'])]
            for m in r['minutes']
        ]
        columns = ['minute', 'occurrences sent', 'first message after :00', 'last after :00']
        print(table(columns, rows))
        problems += [
            f'sustained: minute {m["minute"]} sent {m["sent"]}, expected {n}'
            for m in r['minutes']
            if m['sent'] != n
        ]
    for (scenario, _, n), r in results.items():
        if scenario == 'metrics' and 'tick_on_s' in r:
            problems += metrics_report(r, n)
    problems += lateness_report(results)
    repeated = [
        [scenario, fmt_num(n), impl, ' '.join(fmt_time(t) for t in r['repeat_tick_s'])]
        for (scenario, impl, n), r in results.items()
        if 'repeat_tick_s' in r
    ]
    if repeated:
        print('\nEach figure above comes from the run whose tick was the median; every run:\n')
        print(table(['scenario', 'N', 'impl', 'one tick, each run in order'], repeated))
    targets = target_rows(results, sizes)
    if targets:
        print('\nIssue 3 targets (ours)\n')
        print(table(['target', 'measured', 'met'], targets))
    codes = {r['code'] for (_, impl, _), r in results.items() if impl == 'ours' and 'code' in r}
    if len(codes) > 1:
        problems.append(f'redbeat/ changed during the run ({len(codes)} versions): rerun')
    problems += [f'{s}/{i}/n={n}: {r["error"]}' for (s, i, n), r in results.items() if 'error' in r]
    for line in problems:
        print(f'\n!!! {line}')
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--sizes', default='1000,10000,100000', help='comma-separated N')
    parser.add_argument('--quick', action='store_true', help='N = 1000,10000 only')
    parser.add_argument('--json', help='also write all results to this file')
    parser.add_argument('--report', metavar='JSON', help='print the tables of an earlier --json')
    parser.add_argument('--scenarios', default='tick,start,save,publish,day,years,mix')
    parser.add_argument(
        '--catchup-100k',
        action='store_true',
        help='also run the catch-up scenarios (day, years, mix) at N >= 100,000',
    )
    parser.add_argument('--impls', default='ours,legacy')
    parser.add_argument(
        '--repeat',
        type=int,
        default=1,
        help='run each scenario this many times (in rounds) and report the run '
        'whose tick is the median',
    )
    parser.add_argument(
        '--sustained', action='store_true', help='also run N entries due every minute (ours)'
    )
    parser.add_argument('--sustained-n', type=int, default=100_000)
    parser.add_argument('--sustained-minutes', type=int, default=5)
    parser.add_argument(
        '--metrics', action='store_true', help='also measure the cost of metrics (ours)'
    )
    parser.add_argument('--metrics-n', type=int, default=10_000)
    parser.add_argument('--metrics-rounds', type=int, default=7)
    parser.add_argument(
        '--lateness-sizes', default='50,1000', help='lateness: N entries due at one instant'
    )
    parser.add_argument('--lateness-runs', type=int, default=20, help='lateness: bursts')
    parser.add_argument(
        '--lateness-period', type=int, default=10, help='lateness: seconds between bursts'
    )
    parser.add_argument(
        '--lateness-concurrency', type=int, default=4, help='lateness: worker threads'
    )
    parser.add_argument(
        '--lateness-schedule',
        choices=('rrule', 'interval'),
        default='rrule',
        help="lateness: the entries' schedule (interval is exact for ours only)",
    )
    args = parser.parse_args()
    if args.report:
        saved = json.loads(Path(args.report).read_text())
        results = {(r['scenario'], r['impl'], r['n']): r for r in saved['results']}
        sizes = sorted({n for (s, _, n) in results if s not in ('sustained', 'lateness')})
        sys.exit(1 if report(results, sizes, saved['header']) else 0)

    sizes = [1000, 10000] if args.quick else [int(s) for s in args.sizes.split(',')]
    scenarios = [s for s in args.scenarios.split(',') if s]
    impls = args.impls.split(',')
    pythons = {'ours': Path(sys.executable)}
    if 'legacy' in impls:
        pythons['legacy'] = legacy_python()

    results: Results = {}
    started = time.time()
    commit = subprocess.run(  # as the code is copied aside, at the start
        ['git', 'describe', '--always', '--dirty'], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    with (
        redis_server('schedule') as schedule_url,
        redis_server('broker') as broker_url,
        snapshot() as code,
    ):
        urls = {'schedule': schedule_url, 'broker': broker_url, 'ours': str(code)}
        server = redis.Redis.from_url(schedule_url).info('server')['redis_version']
        runs: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
        for _ in range(args.repeat):  # rounds: each figure's runs spread over the run
            for n in sizes:
                for scenario in scenarios:
                    if scenario == 'lateness':
                        continue  # its own sizes, below
                    if scenario in CATCH_UP and n >= 100_000 and not args.catchup_100k:
                        continue
                    for impl in impls if scenario != 'publish' else ['ours']:
                        runs.setdefault((scenario, impl, n), []).append(
                            run_worker(pythons[impl], impl, scenario, n, urls)
                        )
        results.update((key, median_run(found)) for key, found in runs.items())
        if args.metrics:
            results[('metrics', 'ours', args.metrics_n)] = run_worker(
                pythons['ours'], 'ours', 'metrics', args.metrics_n, urls,
                ['--rounds', str(args.metrics_rounds)],
            )  # fmt: skip
        if 'lateness' in scenarios:
            extra = ['--runs', str(args.lateness_runs), '--period', str(args.lateness_period),
                     '--concurrency', str(args.lateness_concurrency),
                     '--schedule', args.lateness_schedule,
                     '--worker-python', sys.executable]  # fmt: skip
            for n in [int(s) for s in args.lateness_sizes.split(',')]:
                for impl in impls:
                    results[('lateness', impl, n)] = run_worker(
                        pythons[impl], impl, 'lateness', n, urls, extra
                    )
        if args.sustained:
            extra = ['--minutes', str(args.sustained_minutes)]
            n = args.sustained_n
            results[('sustained', 'ours', n)] = run_worker(
                pythons['ours'], 'ours', 'sustained', n, urls, extra
            )

    found = {impl: r['version'] for (_, impl, _), r in results.items() if 'version' in r}
    codes = {r['code'] for (_, impl, _), r in results.items() if impl == 'ours' and 'code' in r}
    header = (
        f'redbeat benchmark, {time.strftime("%Y-%m-%d %H:%M")}: {os.cpu_count()} cores, '
        f'Python {platform.python_version()}, Redis {server}, celery {version("celery")}, '
        f'kombu {version("kombu")}, redis-py {version("redis")} ({parser_name()}); '
        f'ours {found.get("ours")} '
        f'({commit or "?"}, source {",".join(sorted(codes)) or "?"}), '
        f'legacy {found.get("legacy")}; took {time.time() - started:.0f}s'
    )
    if args.json:
        flat = [dict(r, scenario=s, impl=i, n=n) for (s, i, n), r in results.items()]
        Path(args.json).write_text(json.dumps({'header': header, 'results': flat}, indent=1))
    if report(results, sizes, header):
        sys.exit(1)


if __name__ == '__main__':
    main()
