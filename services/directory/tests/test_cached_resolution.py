"""The hot paths give the same answers as the plain ones: cached resolutions (and their
invalidation by every kind of change), the column-query group expansion, connection status
written to a minute's granularity."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from lienthong.directory.v1 import directory_pb2 as pb
from lienthong_common import agency_codes
from lienthong_common.db import make_engine, make_session_factory, transaction, upgrade_database
from lienthong_directory import domain, groups, reorganize, repository, transfer
from lienthong_directory.domain import Resolution
from lienthong_directory.grpc_api import DirectoryServicer
from lienthong_directory.main import MIGRATIONS
from lienthong_directory.models import AgencyVersion
from lienthong_directory.resolution import ResolutionCache

from .conftest import add_agency

DATA = Path(__file__).resolve().parents[3] / "data" / "directory"
DAYS = [date(2019, 6, 1), date(2025, 6, 30), date(2025, 7, 1), date(2026, 1, 1)]


@pytest.fixture(scope="module")
def full_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sessionmaker[Session]]:
    """National + Hải Phòng datasets with their 2025 reorganisations, on a migrated database."""
    url = f"sqlite:///{tmp_path_factory.mktemp('hot') / 'directory.db'}"
    upgrade_database(url, MIGRATIONS)
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    with transaction(sessions) as session:
        for name in ("national.json", "haiphong.json"):
            report = transfer.import_content(
                session=session,
                fmt="json",
                content=(DATA / name).read_bytes(),
                default_day=date(2019, 1, 1),
            )
            assert report.rejected == [], report.rejected[:5]
    yield sessions
    engine.dispose()


def _served(servicer: DirectoryServicer, codes: list[str], day: date) -> list[tuple[str, ...]]:
    reply = servicer.ResolveRecipients(
        pb.ResolveRecipientsRequest(codes=codes, as_of=day.isoformat()),
        None,  # type: ignore[arg-type]
    )
    return [
        (r.requested_code, r.resolved_code, str(r.found), r.reason, r.group_code) for r in reply.resolutions
    ]


def _plain(sessions: sessionmaker[Session], codes: list[str], day: date) -> list[tuple[str, ...]]:
    with transaction(sessions) as session:
        resolutions = groups.resolve_recipients(session=session, codes=codes, day=day)
    return [(r.requested_code, r.resolved_code, str(r.found), r.reason, r.group_code) for r in resolutions]


def test_descendant_test_agrees_with_is_descendant(full_db: sessionmaker[Session]) -> None:
    with transaction(full_db) as session:
        codes = sorted({v.code for v in repository.all_versions(session=session)})
    bases = [c for c in codes if agency_codes.parse(c).depth <= 2]
    assert len(codes) > 300 and len(bases) > 50
    for base in bases:
        below = groups.descendant_test(base)
        assert [c for c in codes if below(c)] == [c for c in codes if agency_codes.is_descendant(c, base)]


def test_cached_resolutions_equal_the_plain_ones(full_db: sessionmaker[Session]) -> None:
    with transaction(full_db) as session:
        defined = [g.code for g in repository.list_groups(session=session)]
        some = sorted({v.code for v in repository.all_versions(session=session)})[::7]
    assert defined, "the Hải Phòng dataset defines groups"
    addresses = [
        *defined,
        *some,
        "tier4:000.00.00.H27",
        "tier4:000.00.01.H27",
        "departments:H27",
        "departments:H26",
        "000.00.00.H26",  # Hải Dương, merged into Hải Phòng on 1 July 2025
        "000.00.00.H99",
        "vxp.saas.03",
        "000.00.09.X00",
        " 000.00.00.H27 ",
    ]
    servicer = DirectoryServicer(sessions=full_db)
    for day in DAYS:
        plain = _plain(full_db, addresses, day)
        assert _served(servicer, addresses, day) == plain  # computed
        assert _served(servicer, addresses, day) == plain  # from the cache
        assert _served(servicer, list(reversed(addresses)), day) == _plain(
            full_db, list(reversed(addresses)), day
        )
    assert servicer.resolutions.hits >= 2 * len(addresses) * len(DAYS)
    # The group of the benchmark: 223 communes and wards in 2020, each once, by code.
    communes = _served(servicer, ["000.00.01.X00"], date(2020, 6, 1))
    assert len(communes) == 223
    assert [c[1] for c in communes] == sorted({c[1] for c in communes})


def test_expand_returns_the_versions_in_effect(full_db: sessionmaker[Session]) -> None:
    with transaction(full_db) as session:
        for day in DAYS:
            expanded = groups.expand(session=session, address="tier4:000.00.00.H27", day=day)
            listed = [
                v
                for v in repository.list_as_of(session=session, day=day, level1="H27", tier=4)
                if v.status == domain.ACTIVE
            ]
            assert [(v.code, v.id) for v in expanded] == [(v.code, v.id) for v in listed]


def _revision(sessions: sessionmaker[Session]) -> int:
    with transaction(sessions) as session:
        return repository.directory_revision(session=session)


def test_every_change_invalidates_the_cache(sessions: sessionmaker[Session], quang_ninh: None) -> None:
    servicer = DirectoryServicer(sessions=sessions)
    day = date(2024, 1, 1)
    group = ["tier4:000.00.00.H49"]

    def members() -> list[str]:
        return [r[1] for r in _served(servicer, group, day)]

    assert members() == ["000.01.03.H49"]
    before = _revision(sessions)
    # A new agency, written by another session (as an import or another replica would).
    with transaction(sessions) as session:
        add_agency(session, "000.02.03.H49", 4, "Phường Bãi Cháy", on=date(2020, 1, 1))
    assert _revision(sessions) > before
    assert members() == ["000.01.03.H49", "000.02.03.H49"]
    # A reorganisation: Hồng Gai dissolved into Bãi Cháy.
    with transaction(sessions) as session:
        reorganize.reorganize(
            session=session,
            changes=[(reorganize.Dissolve("000.01.03.H49", "000.02.03.H49"), date(2023, 1, 1))],
        )
    assert members() == ["000.02.03.H49"]
    single = _served(servicer, ["000.01.03.H49"], day)
    assert single[0][1] == "000.02.03.H49" and "dissolved on 2023-01-01" in single[0][3]
    # Groups: defined, redefined, deleted, through the servicer and directly.
    named = pb.Group(code="000.00.05.X00", name="Nhóm", rule="members", members=["000.00.12.H49"])
    servicer.DefineGroup(named, None)  # type: ignore[arg-type]
    assert [r[1] for r in _served(servicer, ["000.00.05.X00"], day)] == ["000.00.12.H49"]
    with transaction(sessions) as session:
        groups.define_group(
            session=session,
            definition=groups.GroupDefinition("000.00.05.X00", "Nhóm", "members", "", ("000.00.03.H49",)),
        )
    assert [r[1] for r in _served(servicer, ["000.00.05.X00"], day)] == ["000.00.03.H49"]
    servicer.DeleteGroup(pb.DeleteGroupRequest(code="000.00.05.X00"), None)  # type: ignore[arg-type]
    gone = _served(servicer, ["000.00.05.X00"], day)
    assert gone[0][2] == "False" and "not defined" in gone[0][3]
    # A change that leaves the agencies alone (a credential) does not empty the cache.
    revision = _revision(sessions)
    with transaction(sessions) as session:
        domain.set_credential(
            session=session,
            client_id="000.02.03.H49",
            secret="a-long-enough-secret",
            roles=[],
        )
    assert _revision(sessions) == revision
    # A rolled-back change leaves no trace.
    with pytest.raises(RuntimeError), transaction(sessions) as session:
        add_agency(session, "000.03.03.H49", 4, "Phường mới", on=date(2020, 1, 1))
        raise RuntimeError("roll back")
    assert _revision(sessions) == revision
    assert members() == ["000.02.03.H49"]


def test_revision_row_is_made_on_first_write(sessions: sessionmaker[Session]) -> None:
    assert _revision(sessions) == 0  # create_all makes no row; migration 0003 does
    with transaction(sessions) as session:
        add_agency(session, "000.00.00.H49", 2, "Ủy ban nhân dân tỉnh Quảng Ninh", on=date(2020, 1, 1))
        add_agency(session, "000.00.03.H49", 3, "Ủy ban nhân dân thành phố Hạ Long", on=date(2020, 1, 1))
    assert _revision(sessions) >= 2
    with transaction(sessions) as session:
        versions = session.query(AgencyVersion).count()
    assert versions == 2


def test_exchange_time_moves_by_a_minute_at_least(sessions: sessionmaker[Session]) -> None:
    start = datetime(2026, 1, 1, 8, 0, tzinfo=UTC)
    code = "000.00.00.H49"

    def record(at: datetime) -> datetime:
        with transaction(sessions) as session:
            repository.record_exchange(session=session, agency_code=code, at=at)
        with transaction(sessions) as session:
            stored = repository.exchanges(session=session)[code]
        return stored if stored.tzinfo else stored.replace(tzinfo=UTC)

    assert record(start) == start
    assert record(start + timedelta(seconds=59)) == start  # within the granularity: no write
    assert record(start - timedelta(hours=1)) == start  # older: nothing
    assert record(start + repository.EXCHANGE_GRANULARITY) == start + timedelta(minutes=1)
    assert record(start + timedelta(days=3)) == start + timedelta(days=3)


def test_cache_is_bounded(sessions: sessionmaker[Session], quang_ninh: None) -> None:
    cache: ResolutionCache[tuple[Resolution, ...]] = ResolutionCache(lambda r: r, max_weight=2)
    day = date(2024, 1, 1)
    codes = ["000.00.00.H49", "000.00.03.H49", "000.01.03.H49"]
    with transaction(sessions) as session:
        first = cache.resolve(session=session, codes=codes, day=day)
        assert [r[0].resolved_code for r in first] == codes
        assert (cache.hits, cache.misses) == (0, 3)
        # The third entry overflowed the bound and emptied the cache: only it is kept.
        assert cache.lookup(reader=session, codes=codes[2:], day=day) == first[2:]
        assert cache.lookup(reader=session, codes=codes[:1], day=day) is None
