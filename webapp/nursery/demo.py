"""Realistic demo data for the nursery: Latin names with cultivars, diacritics, several weeks."""

from __future__ import annotations

import random
from datetime import date, timedelta

import sqlalchemy as sa

from webapp.extensions import db
from webapp.models import PottingLot

PLANTS = (
    "Hydrangea macrophylla 'Bodensee'",
    "Lavandula angustifolia 'Hidcote'",
    "Acer palmatum 'Bi Hō'",
    "Rosa 'Königin von Dänemark'",
    "Clematis 'Błękitny Anioł'",
    "Helleborus × hybridus 'Pink Lady'",
    "Prunus lusitanica 'Angustifolia'",
    "Geranium × cantabrigiense 'Biokovo'",
    "Salvia nemorosa 'Caradonna'",
    "Digitalis purpurea 'Dalmatian Crème'",
    "Ilex crenata 'Dark Green'",
    "Buxus sempervirens 'Suffruticosa'",
    "Echinacea purpurea 'Magnus'",
    "Phlox paniculata 'Düsterlohe'",
    "Achillea millefolium 'Sommerwein'",
    "Erica carnea 'Myretoun Ruby'",
    "Calluna vulgaris 'Dark Beauty'",
    "Skimmia japonica 'Rubella'",
    "Pieris japonica 'Forest Flame'",
    "Heuchera 'Crème Brûlée'",
    "Astilbe × arendsii 'Fanal'",
    "Hosta 'Frances Williams'",
    "Miscanthus sinensis 'Gracillimus'",
    "Pennisetum alopecuroides 'Hameln'",
    "Viburnum tinus 'Eve Price'",
    "Camellia japonica 'Lady Campbell'",
    "Rhododendron 'Cunningham's White'",
    "Aster × frikartii 'Mönch'",
    "Sedum 'Herbstfreude'",
    "Thymus serpyllum 'Coccineus'",
    "Rudbeckia fulgida var. sullivantii 'Goldsturm'",
    "Chamaecyparis lawsoniana 'Ellwoodii'",
    "Euonymus fortunei 'Emerald 'n' Gold'",
)
POT_SIZES = ("P9", "P10.5", "P11", "12", "14", "17", "C2", "C3", "C5")
LOCATIONS = (
    "Kas 1 – tafel 04",
    "Kas 1 – tafel 11",
    "Kas 2 – tafel 02",
    "Kas 3 – tafel 07",
    "Buitenveld A",
    "Buitenveld B",
    "Containerveld C3",
    "Schaduwhal",
)
CUSTOMERS = (
    None,
    None,
    None,
    "Tuincentrum De Oosteinde",
    "Boomkwekerij Van den Berg",
    "Jardinerie Lefèvre",
    "Gärtnerei Müller & Söhne",
    "Ogrody Łąkowski",
    "Hovenier Ünal",
)


def random_lot(rng: random.Random, n: int, today: date) -> PottingLot:
    """Lot number `n`, potted in the 8 weeks before `today` (demo data and the benchmarks)."""
    day = today - timedelta(days=rng.randrange(0, 56))
    year, week, _ = day.isocalendar()
    return PottingLot(
        lot_number=f"P{year % 100:02d}{week:02d}-{n:05d}",
        plant_name=rng.choice(PLANTS),
        pot_size=rng.choice(POT_SIZES),
        quantity=rng.choice((24, 36, 48, 60, 120, 240, 480)),
        potting_date=day,
        location=rng.choice(LOCATIONS),
        customer=rng.choice(CUSTOMERS),
    )


def seed_lots(count: int, *, today: date | None = None, seed: int = 48) -> int:
    """Add `count` potting lots spread over the last eight weeks; returns how many were added."""
    rng = random.Random(seed)
    today = today or date.today()
    # Numbered after the lots already there, so seeding twice adds lots instead of failing.
    first = (db.session.scalar(sa.select(sa.func.max(PottingLot.id))) or 0) + 1
    lots = [random_lot(rng, n, today) for n in range(first, first + count)]
    db.session.add_all(lots)
    db.session.commit()
    return len(lots)
