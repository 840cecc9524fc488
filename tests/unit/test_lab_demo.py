"""The lab's demo data (`webapp.lab.demo.seed_lab`) on a fresh, migrated database."""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import UTC, date
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from webapp.extensions import db
from webapp.lab.demo import seed_lab
from webapp.models import (
    AnalysisType,
    Job,
    Protocol,
    ProtocolStatus,
    Report,
    ReportStatus,
    User,
    Veterinarian,
    WorkOrder,
    WorkOrderItem,
)

TODAY = date(2026, 3, 16)
NUMBER = re.compile(r"^(HP|CT) (\d{2})/(\d{4})$")


def all_of(model):
    return db.session.scalars(sa.select(model).order_by(model.id)).all()


def sequence(number: str) -> int:
    return int(number.rsplit("/", 1)[1])


@pytest.fixture
def seeded(ctx):
    return seed_lab(60, today=TODAY)


class TestProtocols:
    def test_a_fresh_database_gets_protocol_ids_one_to_count(self, seeded):
        assert seeded == list(range(1, 61))
        assert [p.id for p in all_of(Protocol)] == seeded

    def test_every_protocol_is_received_within_the_last_twenty_days_during_working_hours(
        self, ctx, seeded
    ):
        zone = ZoneInfo(ctx.config["TZ"])
        for protocol in all_of(Protocol):
            assert protocol.status == ProtocolStatus.RECEIVED
            assert 1 <= (TODAY - protocol.received_on).days <= 20
            assert protocol.received_at.tzinfo is None  # naive UTC, like every timestamp
            local = protocol.received_at.replace(tzinfo=UTC).astimezone(zone)
            assert local.date() == protocol.received_on
            assert 8 <= local.hour < 18

    def test_numbers_are_unique_and_their_prefix_and_year_match_the_protocol(self, seeded):
        protocols = all_of(Protocol)
        assert len({p.number for p in protocols}) == len(protocols)
        for protocol in protocols:
            match = NUMBER.match(protocol.number)
            assert match, protocol.number
            assert match[1] == AnalysisType(protocol.analysis_type).code
            assert match[2] == f"{protocol.received_on:%y}"

    def test_both_analysis_types_occur_and_histopathology_is_the_most_common(self, seeded):
        types = [p.analysis_type for p in all_of(Protocol)]
        assert types.count("histopathology") > types.count("cytology") > 0

    def test_sequences_count_from_one_per_prefix_in_order_of_reception(self, seeded):
        by_prefix = defaultdict(list)
        for protocol in sorted(all_of(Protocol), key=lambda p: p.received_at):
            by_prefix[protocol.number[:5]].append(sequence(protocol.number))
        assert set(by_prefix) == {"HP 26", "CT 26"}
        for sequences in by_prefix.values():
            assert sequences == list(range(1, len(sequences) + 1))

    def test_sequences_start_again_in_a_new_year(self, ctx):
        seed_lab(80, today=date(2027, 1, 8))
        numbers = [p.number for p in all_of(Protocol)]
        assert {n[:5] for n in numbers} == {"HP 26", "HP 27", "CT 26", "CT 27"}
        assert {"HP 26/0001", "HP 27/0001", "CT 26/0001", "CT 27/0001"} <= set(numbers)

    def test_external_ids_are_unique_long_and_url_safe(self, seeded):
        external_ids = [p.external_id for p in all_of(Protocol)]
        assert len(set(external_ids)) == len(external_ids)
        assert all(re.fullmatch(r"[A-Za-z0-9_-]{32,}", e) for e in external_ids)

    def test_animals_include_chip_numbers_long_names_and_several_species(self, ctx):
        seed_lab(300, today=TODAY)
        protocols = all_of(Protocol)
        animals = {p.animal_id for p in protocols}
        assert any(re.fullmatch(r"Chip \d{15}", a) for a in animals)
        assert any(len(a) >= 14 and not a.startswith("Chip") for a in animals)
        assert {"Canino", "Felino"} <= {p.species for p in protocols}
        assert len({p.species for p in protocols}) >= 5


class TestVeterinarians:
    def test_addresses_are_ascii_at_example_com_and_names_keep_their_diacritics(self, seeded):
        vets = all_of(Veterinarian)
        assert 10 <= len(vets) <= 14
        assert len({v.email for v in vets}) == len(vets)
        for vet in vets:
            assert vet.email.endswith("@example.com") and vet.email.isascii(), vet.email
            assert vet.clinic
        assert any(not v.name.isascii() for v in vets)
        assert "begona.ibanez@example.com" in {v.email for v in vets}

    def test_an_existing_veterinarian_is_reused_by_email(self, ctx):
        db.session.add(
            Veterinarian(name="B. Ibáñez", clinic="Old", email="begona.ibanez@example.com")
        )
        db.session.commit()
        seed_lab(60, today=TODAY)
        ibanez = db.session.scalars(
            sa.select(Veterinarian).where(Veterinarian.email == "begona.ibanez@example.com")
        ).one()
        assert ibanez.id == 1 and ibanez.name == "B. Ibáñez"
        assert db.session.scalar(sa.select(sa.func.count()).where(Protocol.veterinarian_id == 1))


class TestReports:
    def test_one_draft_report_per_protocol_with_the_protocols_id(self, seeded):
        reports = all_of(Report)
        assert [r.id for r in reports] == seeded
        for report in reports:
            assert report.protocol_id == report.id
            assert report.status == ReportStatus.DRAFT and report.version == 1
            assert report.clinical_history and report.diagnosis and report.histopathologist

    def test_cassettes_have_a_label_a_tissue_and_an_observation(self, ctx):
        seed_lab(200, today=TODAY)
        counts = []
        for report in all_of(Report):
            counts.append(len(report.cassettes))
            for cassette in report.cassettes:
                assert set(cassette) == {"cassette", "tissue", "observation"}
                assert re.fullmatch(r"[A-D]\d{1,2}", cassette["cassette"])
                assert cassette["tissue"] and cassette["observation"].endswith(".")
            labels = [c["cassette"] for c in report.cassettes]
            assert len(set(labels)) == len(labels)
        assert all(1 <= n <= 8 or 20 <= n <= 40 for n in counts)
        assert any(n >= 20 for n in counts)  # multi-page reports exist

    def test_diagnoses_vary(self, seeded):
        assert len({r.diagnosis for r in all_of(Report)}) >= 15


class TestWorkOrders:
    def test_about_one_order_per_three_protocols_with_ids_from_one(self, seeded):
        orders = all_of(WorkOrder)
        assert [o.id for o in orders] == list(range(1, 21))
        assert all(o.version == 1 for o in orders)

    def test_each_order_bills_one_to_four_protocols_of_its_own_veterinarian(self, seeded):
        billed = []
        for order in all_of(WorkOrder):
            assert 1 <= len(order.items) <= 4
            for item in order.items:
                assert item.protocol.veterinarian_id == order.veterinarian_id
                assert item.service and item.price_cents > 0 and item.quantity == 1
                billed.append(item.protocol_id)
        assert len(set(billed)) == len(billed)  # no protocol on two orders

    def test_a_single_protocol_still_gets_an_order(self, ctx):
        assert seed_lab(1, today=TODAY) == [1]
        orders = all_of(WorkOrder)
        assert len(orders) == 1 and [i.protocol_id for i in orders[0].items] == [1]

    def test_nothing_is_added_for_a_count_of_zero(self, ctx):
        assert seed_lab(0, today=TODAY) == []
        assert not all_of(WorkOrder) and not all_of(Protocol)


class TestSeedingAgain:
    def test_a_second_run_continues_the_numbers_and_reuses_the_veterinarians(self, ctx, seeded):
        vets = db.session.scalar(sa.select(sa.func.count(Veterinarian.id)))
        first = {p.number for p in all_of(Protocol)}
        highest = defaultdict(int)
        for number in first:
            highest[number[:5]] = max(highest[number[:5]], sequence(number))

        again = seed_lab(60, today=TODAY)

        assert again == list(range(61, 121))
        assert db.session.scalar(sa.select(sa.func.count(Veterinarian.id))) == vets
        second = [p for p in all_of(Protocol) if p.id in again]
        assert not first & {p.number for p in second}
        assert all(sequence(p.number) > highest[p.number[:5]] for p in second)
        assert [r.id for r in all_of(Report)] == list(range(1, 121))

    def test_numbering_continues_after_the_highest_sequence_already_there(self, ctx):
        vet = Veterinarian(name="Ana Ruiz", email="ana.ruiz@example.com")
        db.session.add(vet)
        db.session.flush()
        db.session.add(
            Protocol(
                number="HP 26/0500",
                veterinarian_id=vet.id,
                animal_id="Rex",
                species="Canino",
                analysis_type="histopathology",
            )
        )
        db.session.commit()
        ids = seed_lab(30, today=TODAY)
        numbers = {p.number for p in all_of(Protocol) if p.id in ids}
        assert "HP 26/0501" in numbers and "HP 26/0001" not in numbers
        assert "CT 26/0001" in numbers

    def test_it_creates_no_users_and_no_jobs(self, seeded):
        assert not all_of(User) and not all_of(Job)
        assert db.session.scalar(sa.select(sa.func.count(WorkOrderItem.id))) >= 20


class TestDeterminism:
    def test_two_fresh_databases_with_the_same_seed_get_the_same_data(self, make_app, tmp_path):
        def snapshot(app, seed=7):
            with app.app_context():
                seed_lab(40, today=TODAY, rng_seed=seed)
                rows = [
                    (p.number, p.animal_id, p.species, p.received_at, p.veterinarian.email)
                    for p in all_of(Protocol)
                ]
                rows += [(r.diagnosis, len(r.cassettes)) for r in all_of(Report)]
                rows += [
                    (i.work_order_id, i.protocol_id, i.service, i.price_cents)
                    for i in all_of(WorkOrderItem)
                ]
                db.session.remove()
                return rows

        one = snapshot(make_app(PRESSROOM_DATA=str(tmp_path / "one")))
        two = snapshot(make_app(PRESSROOM_DATA=str(tmp_path / "two")))
        other = snapshot(make_app(PRESSROOM_DATA=str(tmp_path / "three")), seed=8)
        assert one == two
        assert one != other
