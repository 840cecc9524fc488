"""Realistic demo data for the lab: received protocols with draft reports, vets, work orders.

Spanish clinical text and names with diacritics (plus a few Dutch clinics), so the PDFs, labels
and exports meet ñ, ü, à and long animal names from the first run.
"""

from __future__ import annotations

import random
import unicodedata
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import NamedTuple
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.orm import Session

from webapp.db import write_txn
from webapp.models import (
    AnalysisType,
    Protocol,
    ProtocolStatus,
    Report,
    ReportStatus,
    Veterinarian,
    WorkOrder,
    WorkOrderItem,
)

# (given name, surname(s), clinic); the e-mail is "<given>.<first surname>@example.com" in ascii.
VETS = (
    ("Begoña", "Ibáñez Muñoz", "Clínica Veterinaria Los Ángeles"),
    ("José Luis", "Peñalver", "Hospital Veterinario Mediterráneo"),
    ("Núria", "Fàbregas", "Centre Veterinari Sant Jordi"),
    ("Sjoerd", "van der Heijden", "Dierenkliniek De Vijverhof"),
    ("Ilse", "Dijkstra-Müller", "Dierenartsenpraktijk 't Gooi"),
    ("Íñigo", "Zubiría", "Clínica Veterinaria Txakurra"),
    ("María Ángeles", "Castaño Rueda", "Clínica Veterinaria La Alameda"),
    ("Andrés", "Martín Gómez", "Hospital Veterinario Sierra Nevada"),
    ("Lucía", "Ordóñez", "Clínica Veterinaria Montealegre"),
    ("Jordi", "Puigdomènech", "Clínica Veterinària L'Empordà"),
    ("Fleur", "de Vries", "Dierenkliniek Zuiderpark"),
    ("Raquel", "Núñez Alarcón", "Centro Veterinario Exóticos Argüelles"),
)
VET_WEIGHTS = (9, 7, 5, 4, 3, 3, 6, 5, 4, 2, 2, 3)  # a few clinics send most of the samples
HISTOPATHOLOGISTS = ("Dra. Carmen Alcaraz Ríos", "Dr. Joaquín Ortega Sáez", "Dra. Maartje de Wit")

PET_NAMES = (
    "Luna", "Coco", "Thor", "Pipo", "Kira", "Bobby", "Nala", "Simba", "Lola", "Toby", "Canela",
    "Rocky", "Mía", "Chispa", "Bruno", "Nieve", "Óscar", "Tara", "Brisa", "Zeus",
    "Bram", "Sjaak", "Fleur", "Guusje", "Joep", "Moortje",
    "Señor Bigotes", "Princesa Kiara", "Sir Winston Churchill", "Canela de la Vega",
    "Pelusa Maravillas", "Doña Croqueta",
)  # fmt: skip
CHIP_PREFIXES = ("941000", "724098", "528210", "900164")  # manufacturer / country codes
# (species, weight, oldest age in years)
SPECIES = (
    ("Canino", 55, 15),
    ("Felino", 28, 18),
    ("Equino", 3, 25),
    ("Conejo", 4, 9),
    ("Hurón", 3, 7),
    ("Cobaya", 2, 6),
    ("Loro gris", 2, 30),
    ("Erizo africano", 2, 5),
)
SEXES = ("Hembra esterilizada", "Macho castrado", "Hembra entera", "Macho entero")
HISTORY_EXTRAS = (
    "Sin tratamiento previo.",
    "Tratado con prednisona durante dos semanas sin mejoría.",
    "Se remite la pieza completa tras exéresis quirúrgica.",
    "Se solicita valoración de márgenes.",
    "Crecimiento rápido en el último mes.",
    "Sin otros hallazgos en la exploración general.",
)
MARGINS = (
    "Márgenes quirúrgicos libres (margen lateral mínimo 4 mm, profundo 2 mm).",
    "Márgenes libres pero estrechos en el borde profundo (< 1 mm).",
    "Márgenes infiltrados en el borde lateral; se recomienda ampliación.",
    "",
)
NOTES = (
    "Facturar a la clínica a final de mes.",
    "Pendiente de confirmar la dirección de facturación.",
    "Urgente: el propietario espera el resultado antes del viernes.",
    "Incluye el descuento por volumen acordado (10 %).",
    "Enviar copia de la factura al propietario.",
)
SERVICES = {  # per analysis type: (service, price in cents, weight)
    AnalysisType.HISTOPATHOLOGY: (
        ("Estudio histopatológico", 4200, 8),
        ("Inmunohistoquímica (Ki-67)", 6900, 1),
        ("Tinción especial PAS", 3850, 1),
    ),
    AnalysisType.CYTOLOGY: (("Citología", 3850, 1),),
}


@dataclass(frozen=True)
class Case:
    """One kind of lesion: where it is sampled, what the microscope shows, what it is called."""

    finding: str  # for the clinical history: "nódulo cutáneo"
    tissues: tuple[str, ...]
    observations: tuple[str, ...]  # "{n}" becomes a small count (mitoses, cells)
    diagnoses: tuple[str, ...]  # "{grade}", "{margins}" are filled in
    grades: tuple[str, ...] = ("",)
    extras: tuple[str, ...] = HISTORY_EXTRAS  # the clinical history's last sentence


HISTOLOGY = (
    Case(
        "nódulo cutáneo eritematoso",
        ("Piel (región lumbar)", "Piel (extremidad posterior izquierda)", "Piel (región inguinal)"),
        (
            "Proliferación neoplásica dérmica, no encapsulada y mal delimitada, de células redondas dispuestas en cordones y láminas.",
            "Las células presentan citoplasma moderado con gránulos metacromáticos en la tinción de azul de toluidina.",
            "Se cuentan {n} figuras mitóticas en 10 campos de gran aumento.",
            "Infiltrado moderado de eosinófilos entre las células neoplásicas.",
            "Focos de edema y colagenolisis en la dermis profunda.",
        ),
        ("Mastocitoma cutáneo {grade}. {margins}",),
        (
            "de grado II (Patnaik) / bajo grado (Kiupel)",
            "de grado II (Patnaik) / alto grado (Kiupel)",
            "de grado III (Patnaik) / alto grado (Kiupel)",
        ),
    ),
    Case(
        "nódulo alopécico multilobulado",
        ("Piel (párpado superior derecho)", "Piel (región dorsal)", "Piel (cabeza)"),
        (
            "Proliferación bien delimitada de lóbulos de sebocitos maduros con escasas células de reserva periféricas.",
            "No se observan atipias celulares significativas; índice mitótico bajo ({n} mitosis en 10 campos).",
            "Dermatitis piogranulomatosa focal secundaria a la rotura de lóbulos sebáceos.",
        ),
        (
            "Adenoma sebáceo. {margins}",
            "Epitelioma sebáceo. {margins}",
            "Hiperplasia sebácea nodular.",
        ),
    ),
    Case(
        "linfadenomegalia generalizada",
        ("Ganglio linfático poplíteo derecho", "Ganglio linfático submandibular izquierdo"),
        (
            "La arquitectura ganglionar está borrada por una población monomorfa de linfocitos de tamaño grande.",
            "Los núcleos miden 2–2,5 veces el diámetro de un eritrocito, con nucléolos prominentes.",
            "Se cuentan {n} figuras mitóticas por campo de gran aumento.",
            "La neoplasia infiltra la cápsula y el tejido adiposo perinodal.",
        ),
        (
            "Linfoma multicéntrico de células B {grade}.",
            "Linfoma multicéntrico de células B {grade}; se recomienda confirmar el inmunofenotipo (CD20/CD3).",
        ),
        ("de células grandes, alto grado", "de células intermedias", "centroblástico"),
    ),
    Case(
        "masa mamaria firme",
        (
            "Glándula mamaria (M4 izquierda)",
            "Glándula mamaria (M5 derecha)",
            "Glándula mamaria (M2 izquierda)",
        ),
        (
            "Proliferación neoplásica epitelial de patrón tubulopapilar con moderado pleomorfismo nuclear.",
            "Se cuentan {n} figuras mitóticas en 10 campos de gran aumento.",
            "Áreas de necrosis central y estroma desmoplásico.",
            "No se observan émbolos neoplásicos en los vasos linfáticos examinados.",
        ),
        ("Carcinoma mamario tubulopapilar {grade} (Peña). {margins}",),
        ("de grado I", "de grado II", "de grado III"),
    ),
    Case(
        "masa subcutánea blanda",
        ("Tejido subcutáneo (región torácica lateral)", "Tejido subcutáneo (axila izquierda)"),
        (
            "Proliferación bien delimitada de adipocitos maduros sin atipias.",
            "Finos septos fibrovasculares dividen la masa en lóbulos.",
        ),
        ("Lipoma.", "Lipoma infiltrativo. {margins}"),
    ),
    Case(
        "lesión cutánea en botón",
        ("Piel (pabellón auricular derecho)", "Piel (extremidad anterior derecha)"),
        (
            "Proliferación dérmica de células redondas histiocíticas dispuestas en láminas que se extienden hasta la epidermis.",
            "Infiltrado linfocitario nodular en la base de la lesión, compatible con regresión.",
        ),
        ("Histiocitoma cutáneo.", "Histiocitoma cutáneo en regresión."),
    ),
    Case(
        "prurito y placas eritematosas",
        ("Piel (región abdominal ventral)", "Piel (zona perianal)", "Piel (espacio interdigital)"),
        (
            "Hiperqueratosis ortoqueratósica moderada con acantosis irregular de la epidermis.",
            "Infiltrado perivascular superficial de eosinófilos, mastocitos y linfocitos.",
            "No se observan agentes infecciosos con las tinciones de rutina.",
        ),
        ("Dermatitis perivascular superficial {grade}.",),
        ("eosinofílica", "linfoplasmocitaria", "hiperplásica con foliculitis mural"),
    ),
    Case(
        "lesión ulcerada que no cicatriza",
        ("Plano nasal", "Pabellón auricular izquierdo", "Encía (maxilar superior)"),
        (
            "Cordones y nidos de queratinocitos neoplásicos que invaden la dermis con formación de perlas córneas.",
            "Ulceración superficial con exudado fibrinopurulento.",
            "Se cuentan {n} figuras mitóticas en 10 campos de gran aumento.",
        ),
        ("Carcinoma de células escamosas {grade}. {margins}",),
        ("bien diferenciado", "moderadamente diferenciado"),
    ),
    Case(
        "masa firme adherida a planos profundos",
        ("Tejido subcutáneo (muslo derecho)", "Tejido subcutáneo (región escapular)"),
        (
            "Proliferación de células fusiformes dispuestas en haces entrelazados y remolinos perivasculares.",
            "Necrosis inferior al 10 % de la superficie examinada.",
            "Se cuentan {n} figuras mitóticas en 10 campos de gran aumento.",
        ),
        ("Sarcoma de tejidos blandos (tumor de la vaina de nervio periférico) {grade}. {margins}",),
        ("de grado I", "de grado II", "de grado III"),
    ),
    Case(
        "esplenomegalia y una masa cavitada",
        ("Bazo (esplenectomía)",),
        (
            "Espacios vasculares irregulares tapizados por células endoteliales atípicas.",
            "Amplias áreas de hemorragia y trombosis.",
            "Hiperplasia linfoide nodular en el parénquima adyacente.",
        ),
        ("Hemangiosarcoma esplénico.", "Hiperplasia nodular esplénica con hematoma."),
    ),
)
NECROPSY = Case(
    "letargia, anorexia y pérdida de peso",
    (
        "Hígado",
        "Bazo",
        "Riñón izquierdo",
        "Riñón derecho",
        "Pulmón (lóbulo craneal)",
        "Pulmón (lóbulo caudal derecho)",
        "Corazón (ventrículo izquierdo)",
        "Encéfalo (corteza)",
        "Ganglio linfático mesentérico",
        "Estómago",
        "Intestino delgado",
        "Páncreas",
    ),  # fmt: skip
    (
        "Sin alteraciones histológicas significativas.",
        "Congestión vascular difusa moderada.",
        "Infiltrado multifocal de linfocitos neoplásicos de tamaño grande que borran la arquitectura.",
        "Focos de necrosis coagulativa con hemorragia.",
        "Autólisis leve que no impide la valoración.",
        "Nefritis tubulointersticial crónica con fibrosis intersticial.",
    ),
    (
        "Linfoma multicéntrico de células B con infiltración hepática, esplénica y renal.",
        "Hemangiosarcoma esplénico con metástasis hepáticas y pulmonares.",
        "Enfermedad renal crónica: nefritis tubulointersticial crónica grave.",
    ),
    extras=(
        "Fallece en la clínica; se remiten órganos para estudio necrópsico.",
        "Eutanasia por mal pronóstico; se solicita necropsia completa.",
    ),
)
FNA = (
    "Se remiten tres extensiones de punción con aguja fina.",
    "Se remiten dos extensiones teñidas con Diff-Quik.",
    "Se remiten extensiones sin teñir y un tubo con EDTA.",
)
CYTOLOGY = (
    Case(
        "nódulo cutáneo de crecimiento rápido",
        (
            "Punción de nódulo cutáneo (región costal)",
            "Punción de nódulo cutáneo (flanco izquierdo)",
        ),
        (
            "Extensiones de celularidad alta sobre fondo hemático con numerosos gránulos libres.",
            "Población de células redondas con gránulos citoplasmáticos púrpuras y algunos eosinófilos.",
        ),
        (
            "Citología compatible con mastocitoma; se recomienda exéresis y estudio histopatológico para su graduación.",
        ),
        extras=FNA,
    ),
    Case(
        "linfadenomegalia",
        ("Punción de ganglio linfático poplíteo", "Punción de ganglio linfático preescapular"),
        (
            "Más del 50 % de la población corresponde a linfocitos grandes con nucléolos evidentes.",
            "Se observan {n} figuras mitóticas por campo y cuerpos linfoglandulares abundantes.",
            "Población linfoide heterogénea con predominio de linfocitos pequeños y algunas células plasmáticas.",
        ),
        ("Compatible con linfoma de células grandes.", "Hiperplasia linfoide reactiva."),
        extras=FNA,
    ),
    Case(
        "masa subcutánea blanda",
        ("Punción de masa subcutánea (abdomen)",),
        ("Material oleoso con adipocitos maduros aislados y en grupos.",),
        ("Compatible con lipoma.",),
        extras=FNA,
    ),
    Case(
        "derrame pleural",
        ("Líquido pleural",),
        (
            "Celularidad moderada con predominio de neutrófilos no degenerados y macrófagos.",
            "No se observan agentes infecciosos ni células neoplásicas.",
        ),
        ("Exudado piogranulomatoso; no se observan agentes infecciosos.", "Trasudado modificado."),
        extras=("Se remiten 5 ml de líquido obtenido por toracocentesis en tubo con EDTA.",),
    ),
)


def ascii_slug(text: str) -> str:
    """'Dijkstra-Müller' -> 'dijkstra-muller', 'José Luis' -> 'joseluis' (an e-mail local part)."""
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(c for c in plain.lower() if c.isalnum() or c == "-")


def vet_email(given: str, surnames: str) -> str:
    first = surnames if surnames[:1].islower() else surnames.split()[0]  # "van der Heijden"
    return f"{ascii_slug(given)}.{ascii_slug(first)}@example.com"


def _animal(rng: random.Random) -> str:
    if rng.random() < 0.2:
        return f"Chip {rng.choice(CHIP_PREFIXES)}{rng.randrange(10**9):09d}"
    return rng.choice(PET_NAMES)


def _cassettes(rng: random.Random, case: Case, many: bool) -> list[dict[str, str]]:
    count = rng.randint(20, 40) if many else rng.randint(1, 8)
    rows = []
    for i in range(count):
        sentences = rng.sample(case.observations, rng.randint(1, min(3, len(case.observations))))
        rows.append(
            {
                "cassette": f"{'ABCD'[i // 10]}{i % 10 + 1}" if many else f"A{i + 1}",
                "tissue": case.tissues[i % len(case.tissues)] if many else rng.choice(case.tissues),
                "observation": " ".join(sentences).format(n=rng.randint(0, 12)),
            }
        )
    return rows


def _report(rng: random.Random, analysis: AnalysisType, max_age: int) -> Report:
    many = analysis is AnalysisType.HISTOPATHOLOGY and rng.random() < 0.03
    case = (
        NECROPSY
        if many
        else rng.choice(HISTOLOGY if analysis is AnalysisType.HISTOPATHOLOGY else CYTOLOGY)
    )
    age = rng.randint(1, max_age)
    history = (
        f"{rng.choice(SEXES)} de {age} {'año' if age == 1 else 'años'} con {case.finding} "
        f"de {rng.randint(1, 12)} semanas de evolución. {rng.choice(case.extras)}"
    )
    diagnosis = rng.choice(case.diagnoses).format(
        grade=rng.choice(case.grades), margins=rng.choice(MARGINS)
    )
    return Report(
        status=ReportStatus.DRAFT.value,
        version=1,
        clinical_history=history,
        cassettes=_cassettes(rng, case, many),
        diagnosis=diagnosis.strip(),
        histopathologist=rng.choice(HISTOPATHOLOGISTS),
    )


def _received(rng: random.Random, today: date, zone: ZoneInfo) -> tuple[datetime, date]:
    """A working-hours moment (08:00–18:00 local) on one of the 20 days before `today`: naive UTC,
    and the local day (never in the future, so "received" stays true whenever it is run)."""
    day = today - timedelta(days=rng.randint(1, 20))
    local = datetime.combine(day, time(8), zone) + timedelta(seconds=rng.randrange(10 * 3600))
    return local.astimezone(UTC).replace(tzinfo=None), day


def _highest_sequences(session: Session) -> dict[str, int]:
    """{"HP 26": 41, …}: the highest sequence already used per prefix and year."""
    key = sa.func.substr(Protocol.number, 1, 5)
    rows = session.execute(
        sa.select(key, sa.func.max(sa.cast(sa.func.substr(Protocol.number, 7), sa.Integer)))
        .where(Protocol.number.like("__ __/%"))
        .group_by(key)
    )
    return {prefix: highest or 0 for prefix, highest in rows}


class _Draft(NamedTuple):
    """A protocol before it is numbered (numbers need the whole batch in order of reception)."""

    received_at: datetime
    received_on: date
    vet_index: int
    analysis: AnalysisType
    species: str
    animal: str
    report: Report


def _draft(rng: random.Random, today: date, zone: ZoneInfo) -> _Draft:
    received_at, received_on = _received(rng, today, zone)
    analysis = rng.choices((AnalysisType.HISTOPATHOLOGY, AnalysisType.CYTOLOGY), weights=(7, 3))[0]
    species, _weight, max_age = rng.choices(SPECIES, weights=[s[1] for s in SPECIES])[0]
    return _Draft(
        received_at,
        received_on,
        rng.choices(range(len(VETS)), weights=VET_WEIGHTS)[0],
        analysis,
        species,
        _animal(rng),
        _report(rng, analysis, max_age),
    )


def seed_lab(count: int, *, today: date | None = None, rng_seed: int = 7) -> list[int]:
    """Add `count` received protocols with draft reports, and work orders for about a third of
    them, in one transaction; returns the new protocols' ids in order of reception."""
    rng = random.Random(rng_seed)
    zone = ZoneInfo(current_app.config["TZ"])
    today = today or datetime.now(zone).date()
    drafts = sorted(  # stable: the numbers follow the order of reception
        (_draft(rng, today, zone) for _ in range(count)), key=lambda draft: draft.received_at
    )

    with write_txn() as session:
        emails = [vet_email(given, surnames) for given, surnames, _clinic in VETS]
        known = {
            vet.email: vet
            for vet in session.scalars(
                sa.select(Veterinarian)
                .where(Veterinarian.email.in_(emails))
                .order_by(Veterinarian.id.desc())  # the oldest wins a duplicated e-mail
            )
        }
        vets = [
            known.get(email) or Veterinarian(name=f"{given} {surnames}", clinic=clinic, email=email)
            for (given, surnames, clinic), email in zip(VETS, emails, strict=True)
        ]
        sequences = defaultdict(int, _highest_sequences(session))
        protocols = []
        for draft in drafts:
            key = f"{draft.analysis.code} {draft.received_on:%y}"
            sequences[key] += 1
            protocols.append(
                Protocol(
                    number=f"{key}/{sequences[key]:04d}",
                    veterinarian=vets[draft.vet_index],
                    animal_id=draft.animal,
                    species=draft.species,
                    analysis_type=draft.analysis.value,
                    status=ProtocolStatus.RECEIVED.value,
                    received_on=draft.received_on,
                    received_at=draft.received_at,
                    created_at=draft.received_at,
                    updated_at=draft.received_at,
                )
            )
        session.add_all(vets)
        session.add_all(protocols)
        session.flush()  # protocol ids, which the reports reuse as their own

        reports = []
        for protocol, draft in zip(protocols, drafts, strict=True):
            draft.report.id = draft.report.protocol_id = protocol.id
            reports.append(draft.report)
        session.add_all(reports)
        session.add_all(_work_orders(rng, protocols))
    return [protocol.id for protocol in protocols]


def _work_orders(rng: random.Random, protocols: list[Protocol]) -> list[WorkOrder]:
    """About one order per three protocols, each billing 1–4 protocols of a single vet."""
    pending: dict[int, list[Protocol]] = defaultdict(list)
    for protocol in protocols:
        pending[protocol.veterinarian_id].append(protocol)
    for queue in pending.values():
        rng.shuffle(queue)
    orders: list[WorkOrder] = []
    target = max(1, len(protocols) // 3) if protocols else 0
    vet_ids = sorted(pending)
    while len(orders) < target and vet_ids:
        vet_id = rng.choice(vet_ids)
        queue = pending[vet_id]
        chosen = sorted(queue[: rng.randint(1, 4)], key=lambda protocol: protocol.id)
        del queue[: len(chosen)]
        if not queue:
            vet_ids.remove(vet_id)
        items = []
        for protocol in chosen:
            service, price, _weight = rng.choices(
                SERVICES[protocol.analysis], weights=[s[2] for s in SERVICES[protocol.analysis]]
            )[0]
            items.append(WorkOrderItem(protocol=protocol, service=service, price_cents=price))
        notes = rng.choice(NOTES) if rng.random() < 0.4 else ""
        orders.append(WorkOrder(veterinarian_id=vet_id, notes=notes, version=1, items=items))
    return orders
