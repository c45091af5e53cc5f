"""VDXP systems: envelope-encrypted secrets, rotation, master-key rotation, HMAC checks."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from sqlalchemy import text, update
from sqlalchemy.orm import Session, sessionmaker

from lienthong_common.clock import now_utc
from lienthong_common.db import transaction
from lienthong_common.errors import DomainError, ErrorKind
from lienthong_directory import repository, vdxp_systems
from lienthong_directory.envelope import MasterKeyRing, new_master_key_text
from lienthong_directory.models import VdxpSystemSecret

# VDXP-WIRE.md §2.4: getReceivedEdocList and updateStatus signed by vxp.saas.03 with "s3cret".
WORKED_SYSTEM, WORKED_SECRET = "vxp.saas.03", "s3cret"
WORKED_SIGN_HEADER = (
    b'{"XroadVnpt-systemid":"vxp.saas.03","XroadVnpt-servicetype":"eDoc",'
    b'"XroadVnpt-messagetype":"edoc","XroadVnpt-timestamp":"15032025T091530+0042",'
    b'"XroadVnpt-Content-Type":"application/json"}'
)
WORKED_HASH = "e295aafc73a0779d3ad1c4652e6791458069a608bb1b60014bb065aaf614f327"
UPDATE_STATUS_SIGN_HEADER = (
    b'{"XroadVnpt-systemid":"vxp.saas.03","XroadVnpt-docId":"8af226c8-7cde-4fbe-88fe-e15a768b49cb",'
    b'"XroadVnpt-timestamp":"15032025T091530+0042","XroadVnpt-Content-Type":"application/json",'
    b'"XroadVnpt-status":"done"}'
)
UPDATE_STATUS_HASH = "ac55361f30da4799aa9851b43493d28f77e07c14e5e712e63cad8ce03fd376b4"

PROVINCE, COMMUNE, DISTRICT = "000.00.00.H49", "000.01.03.H49", "000.00.03.H49"


def ring(*ids: str) -> MasterKeyRing:
    return MasterKeyRing.parse(",".join(new_master_key_text(i) for i in ids), source="test")


@pytest.fixture
def keys() -> MasterKeyRing:
    return ring("k1")


def add(
    sessions: sessionmaker[Session],
    keys: MasterKeyRing | None,
    system_id: str = WORKED_SYSTEM,
    agencies: tuple[str, ...] = (PROVINCE,),
    *,
    secret: str = "",
    admin: bool = False,
) -> vdxp_systems.IssuedSecret:
    with transaction(sessions) as session:
        return vdxp_systems.add_system(
            session=session,
            keys=keys,
            system_id=system_id,
            agency_codes=list(agencies),
            admin=admin,
            secret=secret,
        )


def verify(
    sessions: sessionmaker[Session],
    keys: MasterKeyRing | None,
    signature: str,
    *,
    system_id: str = WORKED_SYSTEM,
    signed: bytes = WORKED_SIGN_HEADER,
) -> vdxp_systems.SignatureCheck:
    with transaction(sessions) as session:
        return vdxp_systems.verify_signature(
            session=session, keys=keys, system_id=system_id, signed=signed, signature=signature
        )


def rotate(
    sessions: sessionmaker[Session],
    keys: MasterKeyRing,
    *,
    overlap_seconds: int | None = None,
    new_secret: str = "",
) -> vdxp_systems.IssuedSecret:
    with transaction(sessions) as session:
        return vdxp_systems.rotate_secret(
            session=session,
            keys=keys,
            system_id=WORKED_SYSTEM,
            new_secret=new_secret,
            overlap_seconds=overlap_seconds,
        )


def sign(secret: str, signed: bytes = WORKED_SIGN_HEADER) -> str:
    import hashlib
    import hmac

    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def test_worked_example_of_the_wire_spec_verifies(
    sessions: sessionmaker[Session], keys: MasterKeyRing, quang_ninh: None
) -> None:
    add(sessions, keys, agencies=(PROVINCE, COMMUNE), secret=WORKED_SECRET)
    check = verify(sessions, keys, WORKED_HASH)
    assert check.valid and check.reason == ""
    assert check.system is not None
    assert check.system.system_id == WORKED_SYSTEM
    assert check.system.agency_codes == (PROVINCE, COMMUNE)
    assert verify(sessions, keys, UPDATE_STATUS_HASH, signed=UPDATE_STATUS_SIGN_HEADER).valid


def test_signature_hex_is_compared_case_insensitively(
    sessions: sessionmaker[Session], keys: MasterKeyRing, quang_ninh: None
) -> None:
    add(sessions, keys, secret=WORKED_SECRET)
    assert verify(sessions, keys, WORKED_HASH.upper()).valid
    assert verify(sessions, keys, f" {WORKED_HASH} ").valid


def test_unknown_system_and_wrong_signature_give_the_same_reason(
    sessions: sessionmaker[Session], keys: MasterKeyRing, quang_ninh: None
) -> None:
    add(sessions, keys, secret=WORKED_SECRET)
    wrong = verify(sessions, keys, WORKED_HASH[:-1] + "0")
    unknown = verify(sessions, keys, WORKED_HASH, system_id="vxp.saas.99")
    malformed = verify(sessions, keys, WORKED_HASH, system_id="not a system id")
    tampered = verify(sessions, keys, WORKED_HASH, signed=WORKED_SIGN_HEADER + b" ")
    for check in (wrong, unknown, malformed, tampered):
        assert not check.valid and check.system is None
        assert check.reason == vdxp_systems.NOT_VALID == "system id or signature not valid"
    assert not verify(sessions, keys, "not hex at all, ư").valid


def test_secret_is_envelope_encrypted_and_no_column_holds_it(
    sessions: sessionmaker[Session], keys: MasterKeyRing, quang_ninh: None
) -> None:
    secret = "plain-text-marker-0123456789-abcdefghij"
    add(sessions, keys, secret=secret)
    with transaction(sessions) as session:
        rows = session.execute(text("SELECT * FROM vdxp_system_secrets")).mappings().all()
    assert len(rows) == 1
    row = rows[0]
    assert row["algorithm"] == "A256GCM+A256KW" and row["master_key_id"] == "k1"
    assert len(row["wrapped_key"]) == 40  # a 256-bit data key under RFC 3394 key wrap
    for value in row.values():
        raw = value if isinstance(value, bytes) else str(value).encode()
        assert secret.encode() not in raw and b"plain-text-marker" not in raw
    # A fresh data key and nonce per secret: the same secret never encrypts the same way twice.
    add(sessions, keys, "vxp.saas.04", secret=secret)
    with transaction(sessions) as session:
        ciphertexts = session.execute(text("SELECT ciphertext, wrapped_key FROM vdxp_system_secrets")).all()
    assert ciphertexts[0][0] != ciphertexts[1][0] and ciphertexts[0][1] != ciphertexts[1][1]


def test_generated_secret_is_long_url_safe_and_shown_once(
    sessions: sessionmaker[Session], keys: MasterKeyRing, quang_ninh: None
) -> None:
    issued = add(sessions, keys)
    assert len(issued.secret) >= 32
    assert set(issued.secret) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert issued.secret not in repr(issued)
    assert verify(sessions, keys, sign(issued.secret)).valid
    listed = list_all(sessions)
    assert issued.secret not in repr(listed)


def list_all(sessions: sessionmaker[Session], agency: str = "") -> list[vdxp_systems.SystemView]:
    with transaction(sessions) as session:
        return vdxp_systems.list_systems(session=session, agency_code=agency)


def test_adding_an_existing_system_id_is_already_exists(
    sessions: sessionmaker[Session], keys: MasterKeyRing, quang_ninh: None
) -> None:
    add(sessions, keys, secret=WORKED_SECRET)
    with pytest.raises(DomainError) as caught:
        add(sessions, keys, secret="another-secret")
    assert caught.value.kind is ErrorKind.ALREADY_EXISTS
    assert caught.value.message == "VDXP system vxp.saas.03 already exists"
    assert verify(sessions, keys, WORKED_HASH).valid  # the first secret is untouched


def test_every_agency_must_be_in_the_directory(
    sessions: sessionmaker[Session], keys: MasterKeyRing, quang_ninh: None
) -> None:
    with pytest.raises(DomainError) as caught:
        add(sessions, keys, agencies=(PROVINCE, "000.00.00.H98"))
    assert caught.value.kind is ErrorKind.NOT_FOUND
    assert caught.value.message == "VDXP system vxp.saas.03: agency 000.00.00.H98 is not in the directory"
    with pytest.raises(DomainError) as caught:
        add(sessions, keys, agencies=("000.00.XX.H49",))
    assert caught.value.kind is ErrorKind.INVALID
    with pytest.raises(DomainError) as caught:
        add(sessions, keys, agencies=())
    assert "at least one agency" in caught.value.message
    assert list_all(sessions) == []


@pytest.mark.parametrize("system_id", ["", "vxp saas", "x" * 65, "vxp/03", "hệ-thống"])
def test_system_id_syntax_is_enforced(
    sessions: sessionmaker[Session], keys: MasterKeyRing, quang_ninh: None, system_id: str
) -> None:
    with pytest.raises(DomainError) as caught:
        add(sessions, keys, system_id)
    assert caught.value.kind is ErrorKind.INVALID
    assert "must be 1-64 letters, digits, '.', '_' or '-'" in caught.value.message


def test_agency_code_can_be_the_system_id(
    sessions: sessionmaker[Session], keys: MasterKeyRing, quang_ninh: None
) -> None:
    issued = add(sessions, keys, PROVINCE, (PROVINCE,))
    assert issued.system.system_id == PROVINCE
    assert verify(sessions, keys, sign(issued.secret), system_id=PROVINCE).valid


def test_rotation_keeps_the_previous_secret_for_a_day_by_default(
    sessions: sessionmaker[Session], keys: MasterKeyRing, quang_ninh: None
) -> None:
    add(sessions, keys, secret=WORKED_SECRET)
    before = now_utc()
    rotated = rotate(sessions, keys)
    assert rotated.secret != WORKED_SECRET and len(rotated.secret) >= 32
    assert rotated.system.active_secrets == 2
    until = rotated.system.previous_valid_until
    assert until is not None
    assert before + timedelta(days=1) <= until <= now_utc() + timedelta(days=1)
    assert verify(sessions, keys, WORKED_HASH).valid  # old, during the overlap
    assert verify(sessions, keys, sign(rotated.secret)).valid  # new
    # The overlap ends: the old secret stops, the new one goes on.
    with transaction(sessions) as session:
        session.execute(
            update(VdxpSystemSecret)
            .where(VdxpSystemSecret.valid_until.is_not(None))
            .values(valid_until=now_utc() - timedelta(seconds=1))
        )
    assert not verify(sessions, keys, WORKED_HASH).valid
    assert verify(sessions, keys, sign(rotated.secret)).valid
    [view] = list_all(sessions)
    assert (view.active_secrets, view.previous_valid_until) == (1, None)


def test_rotation_with_zero_overlap_stops_the_previous_secret_at_once(
    sessions: sessionmaker[Session], keys: MasterKeyRing, quang_ninh: None
) -> None:
    add(sessions, keys, secret=WORKED_SECRET)
    rotated = rotate(sessions, keys, overlap_seconds=0)
    assert (rotated.system.active_secrets, rotated.system.previous_valid_until) == (1, None)
    assert not verify(sessions, keys, WORKED_HASH).valid
    assert verify(sessions, keys, sign(rotated.secret)).valid
    with transaction(sessions) as session:
        assert session.execute(text("SELECT count(*) FROM vdxp_system_secrets")).scalar() == 1


def test_a_second_rotation_ends_the_oldest_secret_at_once(
    sessions: sessionmaker[Session], keys: MasterKeyRing, quang_ninh: None
) -> None:
    add(sessions, keys, secret=WORKED_SECRET)
    second = rotate(sessions, keys, overlap_seconds=3600)
    third = rotate(sessions, keys, overlap_seconds=3600)
    assert third.system.active_secrets == 2
    assert not verify(sessions, keys, WORKED_HASH).valid
    assert verify(sessions, keys, sign(second.secret)).valid
    assert verify(sessions, keys, sign(third.secret)).valid


def test_rotation_refuses_a_secret_the_system_already_has_and_bad_overlaps(
    sessions: sessionmaker[Session], keys: MasterKeyRing, quang_ninh: None
) -> None:
    add(sessions, keys, secret=WORKED_SECRET)
    with pytest.raises(DomainError) as caught:
        rotate(sessions, keys, new_secret=WORKED_SECRET)
    assert caught.value.message == "VDXP system vxp.saas.03: the new secret is one it already has"
    assert WORKED_SECRET not in caught.value.message.replace("vxp.saas.03", "")
    for overlap in (-1, 90 * 86400 + 1, 2**62):
        with pytest.raises(DomainError) as caught:
            rotate(sessions, keys, overlap_seconds=overlap)
        assert caught.value.kind is ErrorKind.INVALID
    given = rotate(sessions, keys, new_secret="an-imported-secret", overlap_seconds=0)
    assert given.secret == "an-imported-secret"
    assert verify(sessions, keys, sign("an-imported-secret")).valid


def test_update_replaces_agencies_and_admin_and_list_filters_by_agency(
    sessions: sessionmaker[Session], keys: MasterKeyRing, quang_ninh: None
) -> None:
    add(sessions, keys, "vxp.saas.03", (PROVINCE, COMMUNE), secret=WORKED_SECRET)
    add(sessions, keys, "vxp.saas.04", (DISTRICT,))
    assert [s.system_id for s in list_all(sessions, COMMUNE)] == ["vxp.saas.03"]
    with transaction(sessions) as session:
        updated = vdxp_systems.update_system(
            session=session, system_id="vxp.saas.03", agency_codes=[COMMUNE, DISTRICT], admin=True
        )
    assert (updated.agency_codes, updated.admin) == ((DISTRICT, COMMUNE), True)
    assert [s.system_id for s in list_all(sessions, DISTRICT)] == ["vxp.saas.03", "vxp.saas.04"]
    assert list_all(sessions, PROVINCE) == []
    assert verify(sessions, keys, WORKED_HASH).valid  # secrets stay
    with pytest.raises(DomainError) as caught, transaction(sessions) as session:
        vdxp_systems.update_system(session=session, system_id="vxp.saas.03", agency_codes=[], admin=False)
    assert caught.value.kind is ErrorKind.INVALID
    with pytest.raises(DomainError) as caught, transaction(sessions) as session:
        vdxp_systems.update_system(
            session=session, system_id="vxp.saas.99", agency_codes=[PROVINCE], admin=False
        )
    assert caught.value.kind is ErrorKind.NOT_FOUND


def test_remove_deletes_the_system_its_agencies_and_its_secrets(
    sessions: sessionmaker[Session], keys: MasterKeyRing, quang_ninh: None
) -> None:
    add(sessions, keys, secret=WORKED_SECRET)
    with transaction(sessions) as session:
        removed = vdxp_systems.remove_system(session=session, system_id=WORKED_SYSTEM)
    assert removed.system_id == WORKED_SYSTEM
    assert list_all(sessions) == []
    assert not verify(sessions, keys, WORKED_HASH).valid
    with transaction(sessions) as session:
        for table in ("vdxp_system_secrets", "vdxp_system_agencies"):
            assert session.execute(text(f"SELECT count(*) FROM {table}")).scalar() == 0
    add(sessions, keys, secret="a-new-start")  # the id is free again


def test_without_a_master_key_secret_operations_are_refused_with_the_reason(
    sessions: sessionmaker[Session], keys: MasterKeyRing, quang_ninh: None
) -> None:
    with pytest.raises(DomainError) as caught:
        add(sessions, None)
    assert caught.value.kind is ErrorKind.CONFLICT
    assert "LIENTHONG_DIRECTORY__MASTER_KEYS" in caught.value.message
    with pytest.raises(DomainError):
        verify(sessions, None, WORKED_HASH)


def test_wrong_master_key_fails_clearly_and_never_shows_the_secret(
    sessions: sessionmaker[Session], quang_ninh: None, caplog: pytest.LogCaptureFixture
) -> None:
    add(sessions, ring("k1"), secret=WORKED_SECRET + "-marker")
    impostor = ring("k1")  # same id, other key material
    with caplog.at_level(logging.DEBUG), pytest.raises(DomainError) as caught:
        verify(sessions, impostor, WORKED_HASH)
    assert caught.value.kind is ErrorKind.INTERNAL
    assert "master key 'k1' does not unwrap the data key of vxp.saas.03's secret" in caught.value.message
    with pytest.raises(DomainError) as caught:
        verify(sessions, ring("k2"), WORKED_HASH)
    assert "master key 'k1' is not configured (configured: k2)" in caught.value.message
    assert "s3cret-marker" not in caplog.text and "s3cret-marker" not in caught.value.message


def test_ciphertext_copied_to_another_system_does_not_decrypt(
    sessions: sessionmaker[Session], keys: MasterKeyRing, quang_ninh: None
) -> None:
    add(sessions, keys, "vxp.saas.03", secret=WORKED_SECRET)
    add(sessions, keys, "vxp.saas.04")
    with transaction(sessions) as session:
        source = session.execute(
            text("SELECT wrapped_key, ciphertext FROM vdxp_system_secrets WHERE system_id='vxp.saas.03'")
        ).one()
        session.execute(
            text(
                "UPDATE vdxp_system_secrets SET wrapped_key=:w, ciphertext=:c WHERE system_id='vxp.saas.04'"
            ),
            {"w": source[0], "c": source[1]},
        )
    with pytest.raises(DomainError) as caught:
        verify(sessions, keys, WORKED_HASH, system_id="vxp.saas.04")
    assert "does not decrypt" in caught.value.message


def test_old_master_keys_still_decrypt_and_rewrap_moves_every_secret_to_the_current_one(
    sessions: sessionmaker[Session], quang_ninh: None
) -> None:
    old = ring("k1")
    add(sessions, old, "vxp.saas.03", secret=WORKED_SECRET)
    add(sessions, old, "vxp.saas.04", secret="secret-of-04")
    rotated = MasterKeyRing([ring("k2").current, old.current])  # k2 current, k1 still decrypts
    assert verify(sessions, rotated, WORKED_HASH).valid
    add(sessions, rotated, "vxp.saas.05", secret="secret-of-05")  # new secrets go under k2

    def key_ids() -> list[str]:
        with transaction(sessions) as session:
            return list(
                session.execute(text("SELECT master_key_id FROM vdxp_system_secrets ORDER BY id")).scalars()
            )

    assert key_ids() == ["k1", "k1", "k2"]
    with transaction(sessions) as session:
        report = vdxp_systems.rewrap_secrets(session=session, keys=rotated)
    assert (report.current_key_id, report.secrets, report.rewrapped, report.already_current) == (
        "k2",
        3,
        2,
        1,
    )
    assert report.failures == ()
    assert key_ids() == ["k2", "k2", "k2"]
    retired = MasterKeyRing([rotated.current])  # k1 removed from the settings
    assert verify(sessions, retired, WORKED_HASH).valid
    assert verify(sessions, retired, sign("secret-of-04"), system_id="vxp.saas.04").valid
    with transaction(sessions) as session:
        again = vdxp_systems.rewrap_secrets(session=session, keys=retired)
    assert (again.rewrapped, again.already_current) == (0, 3)


def test_rewrap_reports_secrets_whose_master_key_is_gone_and_moves_the_rest(
    sessions: sessionmaker[Session], quang_ninh: None
) -> None:
    lost, kept = ring("k0"), ring("k1")
    add(sessions, lost, "vxp.saas.03", secret=WORKED_SECRET)
    add(sessions, kept, "vxp.saas.04", secret="secret-of-04")
    current = MasterKeyRing([ring("k2").current, kept.current])
    with transaction(sessions) as session:
        report = vdxp_systems.rewrap_secrets(session=session, keys=current)
    assert (report.rewrapped, report.already_current) == (1, 0)
    [failure] = report.failures
    assert "VDXP system vxp.saas.03" in failure and "master key 'k0' is not configured" in failure
    assert verify(sessions, current, sign("secret-of-04"), system_id="vxp.saas.04").valid


def test_an_agency_served_by_a_vdxp_system_counts_as_having_a_credential(
    sessions: sessionmaker[Session], keys: MasterKeyRing, quang_ninh: None
) -> None:
    from lienthong_directory import connections, domain

    def status() -> dict[str, connections.Connection]:
        with transaction(sessions) as session:
            found = connections.status(
                session=session,
                codes=[PROVINCE, COMMUNE],
                province_code="",
                tier=0,
                day=domain.today(),
                window_days=30,
            )
        return {c.code: c for c in found}

    with transaction(sessions) as session:
        for code in (PROVINCE, COMMUNE):
            repository.record_exchange(session=session, agency_code=code, at=now_utc())
    assert not status()[COMMUNE].active_credential
    add(sessions, keys, agencies=(COMMUNE,))  # the ward speaks VDXP only, no /v1 credential
    after = status()
    assert after[COMMUNE].active_credential and after[COMMUNE].connected
    assert not after[PROVINCE].active_credential
