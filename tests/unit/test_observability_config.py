"""The metrics and events settings: defaults, accepted values, errors naming the setting."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery

from redbeat.config import RedBeatConfig
from redbeat.errors import ConfigurationError
from redbeat.metrics import Observer, Watcher, make_observer
from redbeat.store import Writes


@pytest.fixture
def app() -> Iterator[Celery]:
    app = Celery('observability-config', set_as_current=False)
    app.conf.redbeat_redis_url = 'redis://example.invalid:6390/4'
    yield app
    app.close()


def test_off_by_default_and_the_observer_does_nothing(app: Celery) -> None:
    config = RedBeatConfig.from_app(app)
    assert (config.metrics, config.metrics_address, config.metrics_per_entry) == (None, '0.0.0.0',
                                                                                 False)  # fmt: skip
    assert config.events_maxlen == 0
    assert type(make_observer(config, Writes())) is Observer


@pytest.mark.parametrize(
    ('settings', 'expected'),
    [
        ({'redbeat_metrics': 9808}, {'metrics': 9808}),
        ({'REDBEAT_METRICS': 'registry'}, {'metrics': 'registry'}),
        ({'redbeat_metrics': False}, {'metrics': None}),
        ({'redbeat_metrics_address': '127.0.0.1'}, {'metrics_address': '127.0.0.1'}),
        ({'redbeat_metrics_per_entry': True}, {'metrics_per_entry': True}),
        ({'redbeat_events': True}, {'events_maxlen': 10_000}),
        ({'redbeat_events': True, 'redbeat_events_maxlen': 50}, {'events_maxlen': 50}),
        ({'redbeat_events_maxlen': 50}, {'events_maxlen': 0}),  # a cap alone turns nothing on
    ],
)
def test_accepted_values(app: Celery, settings: dict[str, Any], expected: dict[str, Any]) -> None:
    app.conf.update(settings)
    config = RedBeatConfig.from_app(app)
    assert {k: getattr(config, k) for k in expected} == expected


@pytest.mark.parametrize(
    ('setting', 'bad', 'says'),
    [
        ('redbeat_metrics', 0, 'a port number (1-65535)'),
        ('redbeat_metrics', 70000, 'a port number (1-65535)'),
        ('redbeat_metrics', True, 'a port number'),
        ('redbeat_metrics', '9808', "or 'registry'"),
        ('redbeat_metrics_address', '', 'an address to listen on'),
        ('redbeat_metrics_per_entry', 'yes', 'True or False'),
        ('redbeat_events', 1, 'True or False'),
        ('redbeat_events_maxlen', 0, 'a whole number >= 1'),
        ('redbeat_events_maxlen', 2.5, 'a whole number >= 1'),
    ],
)
def test_bad_values_fail_naming_the_setting(app: Celery, setting: str, bad: Any, says: str) -> None:
    app.conf[setting] = bad
    with pytest.raises(ConfigurationError) as error:
        RedBeatConfig.from_app(app)
    assert error.value.setting == setting
    assert says in str(error.value) and repr(bad) in str(error.value)


def test_events_alone_make_a_watcher_without_metrics(app: Celery) -> None:
    app.conf.redbeat_events = True
    watcher = make_observer(RedBeatConfig.from_app(app), Writes())
    assert isinstance(watcher, Watcher) and watcher.metrics is None


def test_metrics_without_prometheus_client_fail_at_start_saying_what_to_install(
    app: Celery, monkeypatch: pytest.MonkeyPatch
) -> None:
    app.conf.redbeat_metrics = 9808
    config = RedBeatConfig.from_app(app)
    monkeypatch.setitem(sys.modules, 'prometheus_client', None)  # as if not installed
    with pytest.raises(
        ConfigurationError, match=r"redbeat_metrics: .*pip install 'redbeat-scheduler\[metrics\]'"
    ):
        make_observer(config, Writes())
