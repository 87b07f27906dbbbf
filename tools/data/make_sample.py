"""Write deterministic sample data laid out like /kaggle/input/shopee-product-matching/ (local use only).

Usage: python -m tools.data.make_sample --out data/sample [--seed 0] [--rows 2000] [--hidden]   (make sample)

A product (one label_group) is a region of a photo shipped with scikit-image or scikit-learn; its listings are altered
views of that region with varied marketplace titles. Whole groups are held out as the test set, their labels in
<out>.solution.csv. The data, its hard cases and the options: docs/kernels.md, "The sample data".
"""

from __future__ import annotations

import argparse
import importlib.util
import multiprocessing
import shutil
import time
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import imagehash
import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont

from lib.data.competition import VISIBLE_TEST_ROWS

WORKERS = 2
HELD_OUT_SHARE = 0.1
MAX_GROUP = 50
BIG_GROUP = (30, MAX_GROUP)
FAMILY_SHARE = 0.05
BILINGUAL_SHARE = 0.01
ALT_NAME_SHARE = 0.15
OUTPUTS = ("train.csv", "test.csv", "sample_submission.csv", "train_images", "test_images")

# Photos shipped inside the scikit-image and scikit-learn packages (used when present on disk).
SKIMAGE_PHOTOS = (
    "astronaut.png",
    "brick.png",
    "camera.png",
    "cell.png",
    "chelsea.png",
    "coffee.png",
    "coins.png",
    "color.png",
    "grass.png",
    "gravel.png",
    "horse.png",
    "hubble_deep_field.jpg",
    "ihc.png",
    "logo.png",
    "moon.png",
    "motorcycle_left.png",
    "page.png",
    "retina.jpg",
    "rocket.jpg",
    "text.png",
)
SKLEARN_PHOTOS = ("china.jpg", "flower.jpg")

# (brands, types as (Indonesian name, English name, unit kind, amounts), variants) per category.
CATEGORIES = (
    (
        ("Anmum", "Dancow", "SGM", "Bebelac", "Lactogen", "Frisian Flag", "Pediasure", "Morinaga"),
        (
            ("Susu Formula", "Formula Milk", "gr", (200, 400, 800, 900)),
            ("Susu Bubuk", "Powdered Milk", "gr", (200, 400, 1000)),
            ("Susu UHT", "UHT Milk", "ml", (115, 200, 1000)),
        ),
        ("Coklat", "Vanila", "Madu", "Plain", "Strawberry", "Lacta", "Materna", "Essential", "Gold", "Platinum"),
    ),
    (
        ("Wardah", "Emina", "Scarlett", "Somethinc", "Azarine", "Garnier", "Pond's", "Nivea", "Skintific"),
        (
            ("Serum Wajah", "Face Serum", "ml", (15, 20, 30, 50)),
            ("Sabun Cuci Muka", "Facial Wash", "ml", (50, 100, 150)),
            ("Tabir Surya", "Sunscreen", "ml", (30, 50, 100)),
            ("Pelembab", "Moisturizer", "gr", (30, 50, 100)),
            ("Toner", "Toner", "ml", (100, 150, 200)),
        ),
        ("Brightening", "Acne", "Hydrating", "Niacinamide", "Retinol", "Vitamin C", "Aloe Vera", "Rose", "Collagen"),
    ),
    (
        ("Pantene", "Sunsilk", "Clear", "Dove", "Lifebuoy", "Head & Shoulders", "Makarizo", "Emeron"),
        (
            ("Shampoo", "Shampoo", "ml", (70, 170, 340, 680)),
            ("Kondisioner", "Conditioner", "ml", (80, 160, 320)),
            ("Sabun Mandi Cair", "Body Wash", "ml", (250, 450, 900)),
            ("Minyak Rambut", "Hair Oil", "ml", (50, 100, 200)),
        ),
        ("Anti Ketombe", "Hijab", "Black", "Smooth", "Menthol", "Lavender", "Coconut", "Keratin", "Ginseng"),
    ),
    (
        ("Oxone", "Maspion", "Cosmos", "Miyako", "Lock&Lock", "Tupperware", "Kris", "Vicenza"),
        (
            ("Panci", "Cooking Pot", "cm", (16, 18, 20, 24)),
            ("Wajan Teflon", "Frying Pan", "cm", (20, 24, 28, 30)),
            ("Botol Minum", "Water Bottle", "ml", (500, 750, 1000)),
            ("Kotak Makan", "Lunch Box", "ml", (350, 500, 700)),
            ("Rice Cooker", "Rice Cooker", "L", (1, 2, 3)),
        ),
        ("Hitam", "Putih", "Pink", "Hijau", "Stainless", "Anti Lengket", "Transparan", "Motif Bunga", "Polos"),
    ),
    (
        ("Erigo", "Uniqlo", "Roughneck", "Cottonink", "Zoya", "Rabbani", "Elzatta", "3Second"),
        (
            ("Kaos Polos", "Plain T-Shirt", "size", ("S", "M", "L", "XL", "XXL")),
            ("Kemeja Flanel", "Flannel Shirt", "size", ("M", "L", "XL")),
            ("Hijab Segi Empat", "Square Hijab", "cm", (110, 115, 120)),
            ("Celana Jogger", "Jogger Pants", "size", ("S", "M", "L", "XL")),
            ("Jaket Hoodie", "Hoodie Jacket", "size", ("M", "L", "XL", "XXL")),
        ),
        ("Hitam", "Putih", "Navy", "Maroon", "Abu Misty", "Sage", "Mocca", "Army", "Dusty Pink", "Oversize"),
    ),
    (
        ("Xiaomi", "Samsung", "Baseus", "Robot", "Anker", "Ugreen", "Vivan", "Acome"),
        (
            ("Kabel Data", "Data Cable", "cm", (30, 100, 150, 200)),
            ("Charger", "Wall Charger", "W", (10, 18, 20, 33)),
            ("Powerbank", "Power Bank", "mAh", (5000, 10000, 20000)),
            ("Lampu LED", "LED Bulb", "W", (5, 9, 12, 15)),
        ),
        ("Type C", "Micro USB", "Lightning", "Fast Charging", "Hitam", "Putih", "Original", "Redmi", "Galaxy"),
    ),
    (
        ("Rinso", "So Klin", "Molto", "Sunlight", "Mama Lemon", "Wipol", "Downy", "Attack", "Daia"),
        (
            ("Deterjen Cair", "Liquid Detergent", "ml", (650, 800, 1600)),
            ("Sabun Cuci Piring", "Dish Soap", "ml", (400, 700, 780)),
            ("Pewangi Pakaian", "Fabric Softener", "ml", (600, 900, 1600)),
            ("Pembersih Lantai", "Floor Cleaner", "ml", (450, 780, 1600)),
            ("Deterjen Bubuk", "Laundry Powder", "kg", (1, 2, 3)),
        ),
        ("Lemon", "Jeruk Nipis", "Lavender", "Sakura", "Anti Bakteri", "Pink", "Blue", "Matic", "Pine"),
    ),
    (
        ("Indomie", "Kapal Api", "Nescafe", "Good Day", "Chitato", "Tango", "Silverqueen", "Bango", "Sania"),
        (
            ("Kopi Bubuk", "Ground Coffee", "gr", (165, 380)),
            ("Kecap Manis", "Sweet Soy Sauce", "ml", (135, 220, 520)),
            ("Minyak Goreng", "Cooking Oil", "L", (1, 2, 5)),
            ("Coklat Batangan", "Chocolate Bar", "gr", (30, 62, 120)),
            ("Keripik Kentang", "Potato Chips", "gr", (68, 120, 180)),
        ),
        ("Original", "Pedas", "Balado", "Keju", "Mocca", "Extra", "Sapi Panggang", "Rumput Laut", "Jagung Bakar"),
    ),
)
EXTRAS = ("", "", "", "", "Premium", "Jumbo", "Mini", "Refill", "Pouch", "Paket Hemat", "Family Pack", "New")

# Bilingual products: Indonesian and English names (and colours) that share no word.
BILINGUAL = (
    ("Sendok Makan", "Dinner Spoon"),
    ("Kaos Kaki", "Socks"),
    ("Tempat Bumbu", "Spice Rack"),
    ("Gantungan Baju", "Clothes Hanger"),
    ("Payung Lipat", "Folding Umbrella"),
    ("Tas Ransel", "Backpack"),
    ("Jam Dinding", "Wall Clock"),
    ("Lampu Tidur", "Night Lamp"),
    ("Rak Sepatu", "Shoe Rack"),
    ("Selimut Bulu", "Fleece Blanket"),
    ("Sikat Gigi", "Toothbrush"),
    ("Sarung Bantal", "Pillow Case"),
)
COLOURS = (
    ("Hitam", "Black"),
    ("Putih", "White"),
    ("Merah", "Red"),
    ("Biru", "Blue"),
    ("Hijau", "Green"),
    ("Abu", "Grey"),
    ("Kuning", "Yellow"),
    ("Ungu", "Purple"),
)
BILINGUAL_PIECES = (1, 2, 3, 6, 12)

UNIT_FORMS = {
    "ml": ("{}ml", "{} ml", "{} ML", "{}mL"),
    "gr": ("{}gr", "{} gr", "{}g", "{} gram", "{}GR"),
    "L": ("{}L", "{} L", "{} liter", "{} Ltr"),
    "kg": ("{}kg", "{} Kg", "{}KG", "{} kilo"),
    "cm": ("{}cm", "{} cm", "{}CM"),
    "W": ("{}W", "{} W", "{} watt"),
    "mAh": ("{}mAh", "{} mAh", "{}MAH"),
    "pcs": ("{} pcs", "{}pcs", "isi {}", "{} PCS"),
    "size": ("{}", "Size {}", "uk {}", "({})"),
}
ABBREVIATIONS = {
    "Original": "Ori",
    "Premium": "Prem",
    "Hitam": "Htm",
    "Putih": "Pth",
    "Coklat": "Cokelat",
    "Vanila": "Vanilla",
    "Paket": "Pkt",
    "Stainless": "Stainles",
}
PROMO_PREFIXES = (
    "PROMO",
    "READY STOCK",
    "COD",
    "[BISA COD]",
    "ORIGINAL",
    "PROMO!!!",
    "[READY]",
    "SALE",
    "TERMURAH",
    "NEW",
    "HOT SALE",
    "BEST SELLER",
)
PROMO_SUFFIXES = (
    "murah",
    "termurah",
    "BPOM",
    "grosir",
    "free ongkir",
    "ORIGINAL 100%",
    "bisa COD",
    "Ready Stock",
    "TERLARIS",
    "Best Seller",
    "Halal",
    "Grosir Murah",
)
# Emoji as the real titles carry them: UTF-8 bytes written as literal backslash escapes.
EMOJI = (r"\xe2\x9d\xa4", r"\xf0\x9f\x94\xa5", r"\xe2\x9c\xa8", r"\xf0\x9f\x92\xaf", r"\xe2\xad\x90")
STICKERS = ("PROMO", "READY", "COD", "ORI", "SALE", "50% OFF", "FREE ONGKIR", "BPOM")
STICKER_COLOURS = ("red", "black", "white", "orange", "blue")

# Group sizes 2..50: 55% size 2, 20% size 3, 8% size 4, a power-law tail (exponent 3) for the rest.
_TAIL = np.arange(5, MAX_GROUP + 1, dtype=float) ** -3.0
SIZE_VALUES = np.arange(2, MAX_GROUP + 1)
SIZE_PROBS = np.concatenate([[0.55, 0.20, 0.08], 0.17 * _TAIL / _TAIL.sum()])


class Recipe(NamedTuple):
    """What a branded product is made of; its siblings differ only in the amount."""

    brand: str
    type_id: str
    type_en: str
    variant: str
    extra: str
    kind: str
    amounts: tuple


@dataclass(frozen=True)
class Name:
    """One way to name a product: ordered segments (segments[keep] is never dropped) and an optional unit."""

    segments: tuple[str, ...]
    unit: tuple[str, object] | None
    keep: int


@dataclass(frozen=True)
class Look:
    """A product's photo region and fixed appearance, plus the per-listing seed of one rendered view."""

    photo: int
    box: tuple[int, int, int, int]
    flip: bool
    turns: int
    tint: tuple[float, float, float]
    seed: int = 0


@dataclass(frozen=True)
class Product:
    """One label group: its names (main first), look, number of listings and role flags."""

    names: tuple[Name, ...]
    look: Look
    size: int
    bilingual: bool = False
    family_head: int | None = None
    forced: bool = False


def package_dir(name: str) -> Path:
    """Folder of an installed package, found without importing it."""
    return Path(importlib.util.find_spec(name).submodule_search_locations[0])


@lru_cache(maxsize=1)
def load_photos() -> tuple[Image.Image, ...]:
    """Load the packaged photos that exist on disk, as RGB on a white background."""
    photos = []
    paths = [package_dir("skimage") / "data" / name for name in SKIMAGE_PHOTOS]
    for path in paths + [package_dir("sklearn") / "datasets" / "images" / name for name in SKLEARN_PHOTOS]:
        if path.exists():
            with Image.open(path) as im:
                rgba = im.convert("RGBA")
            photos.append(Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba).convert("RGB"))
    if not photos:
        raise SystemExit("no packaged photos found in scikit-image / scikit-learn")
    return tuple(photos)


def pick(rng: np.random.Generator, options):
    """Return one element of a sequence chosen by rng."""
    return options[int(rng.integers(len(options)))]


def unique_ints(rng: np.random.Generator, n: int, low: int, high: int) -> list[int]:
    """Draw n distinct integers in [low, high)."""
    return [int(v) + low for v in rng.choice(high - low, size=n, replace=False)]


def plain_title(name: Name) -> str:
    """Join a name's segments and canonical unit into the clean title."""
    unit = [UNIT_FORMS[name.unit[0]][0].format(name.unit[1])] if name.unit else []
    return " ".join([*name.segments, *unit])


def draw_recipe(rng: np.random.Generator) -> tuple[Recipe, object]:
    """Draw a branded product's recipe and its amount."""
    brands, types, variants = pick(rng, CATEGORIES)
    brand, variant, extra = pick(rng, brands), pick(rng, variants), pick(rng, EXTRAS)
    type_id, type_en, kind, amounts = pick(rng, types)
    return Recipe(brand, type_id, type_en, variant, extra, kind, amounts), pick(rng, amounts)


def branded_names(recipe: Recipe, amount: object) -> tuple[Name, Name]:
    """The Indonesian name and the English-type name of a branded product."""
    unit = (recipe.kind, amount)
    main = Name(tuple(s for s in (recipe.brand, recipe.type_id, recipe.variant, recipe.extra) if s), unit, keep=1)
    alt = Name(tuple(s for s in (recipe.brand, recipe.type_en, recipe.variant, recipe.extra) if s), unit, keep=1)
    return main, alt


def draw_bilingual(rng: np.random.Generator) -> tuple[Name, Name]:
    """Draw an unbranded product named in Indonesian (with pieces) and in English with no shared word."""
    (item_id, item_en), (colour_id, colour_en) = pick(rng, BILINGUAL), pick(rng, COLOURS)
    pieces = ("pcs", pick(rng, BILINGUAL_PIECES))
    return Name((item_id, colour_id), pieces, keep=0), Name((colour_en, item_en), None, keep=1)


def draw_tint(rng: np.random.Generator) -> tuple[float, float, float]:
    """Draw per-channel colour multipliers."""
    return tuple(float(v) for v in rng.uniform(0.55, 1.45, size=3))


def draw_look(rng: np.random.Generator, photos: tuple[Image.Image, ...]) -> Look:
    """Draw a photo region (30-85% of each side, aspect 0.6-1.6) with a fixed tint, flip and turn."""
    photo = int(rng.integers(len(photos)))
    width, height = photos[photo].size
    w = int(width * rng.uniform(0.3, 0.85))
    h = int(np.clip(w * rng.uniform(0.6, 1.6), height * 0.3, height * 0.85))
    x0, y0 = int(rng.integers(width - w + 1)), int(rng.integers(height - h + 1))
    return Look(photo, (x0, y0, x0 + w, y0 + h), bool(rng.random() < 0.5), int(rng.integers(4)), draw_tint(rng))


def draw_size(rng: np.random.Generator) -> int:
    """Draw a group size from the skewed 2..50 law."""
    return int(rng.choice(SIZE_VALUES, p=SIZE_PROBS))


def build_family(rng: np.random.Generator, head: int, recipe: Recipe, used: set[str], products: list) -> None:
    """Append up to two siblings of products[head]: same recipe and photo region, another amount and tint."""
    siblings = 0
    for amount in rng.permutation(np.array(recipe.amounts, dtype=object)):
        names = branded_names(recipe, amount)
        if plain_title(names[0]) in used:
            continue
        used.add(plain_title(names[0]))
        look = replace(products[head].look, tint=draw_tint(rng))
        products.append(Product(names, look, draw_size(rng), family_head=head, forced=products[head].forced))
        siblings += 1
        if siblings == 2:
            break


def build_catalog(rng: np.random.Generator, total_rows: int) -> list[Product]:
    """Draw products until their listings reach total_rows; products 0-2 and 2's siblings are the forced cases."""
    photos, used, products, rows = load_photos(), set(), [], 0
    while rows < total_rows:
        head = len(products)
        forced = head < 3
        if head == 1 or (not forced and rng.random() < BILINGUAL_SHARE):
            recipe, names = None, draw_bilingual(rng)
        else:
            recipe, amount = draw_recipe(rng)
            names = branded_names(recipe, amount)
        if plain_title(names[0]) in used:
            continue
        used.add(plain_title(names[0]))
        size = draw_size(rng) if head else int(rng.integers(BIG_GROUP[0], BIG_GROUP[1] + 1))
        products.append(Product(names, draw_look(rng, photos), size, bilingual=recipe is None, forced=forced))
        if recipe and (head == 2 or (not forced and rng.random() < FAMILY_SHARE)):
            build_family(rng, head, recipe, used, products)
        rows += sum(p.size for p in products[head:])
    return products


def vary_title(rng: np.random.Generator, name: Name) -> str:
    """Rewrite a name the way sellers do: drops, reordering, abbreviations, unit spelling, case, promo, emoji."""
    segments = [s for i, s in enumerate(name.segments) if i == name.keep or rng.random() > 0.12]
    if len(segments) > 1 and rng.random() < 0.25:
        segments.insert(0, segments.pop(int(rng.integers(1, len(segments)))))
    segments = [" ".join(ABBREVIATIONS.get(w, w) if rng.random() < 0.5 else w for w in s.split()) for s in segments]
    if name.unit and rng.random() > 0.1:
        unit = pick(rng, UNIT_FORMS[name.unit[0]]).format(name.unit[1])
        segments.insert(0 if rng.random() < 0.2 else len(segments), unit)
    core = (" - " if rng.random() < 0.15 else " ").join(segments)
    case = rng.random()
    core = core.upper() if case < 0.2 else core.lower() if case < 0.35 else core.title() if case < 0.45 else core
    words = [core]
    if rng.random() < 0.45:
        words.insert(0, pick(rng, PROMO_PREFIXES))
    if rng.random() < 0.35:
        words.append(pick(rng, PROMO_SUFFIXES))
    if rng.random() < 0.2:
        emoji = pick(rng, EMOJI) * int(rng.integers(1, 4))
        words.insert(0 if rng.random() < 0.5 else len(words), emoji)
    return " ".join(words)


def listing_title(rng: np.random.Generator, product: Product, index: int) -> str:
    """Title of a product's index-th listing: listing 0 (and a bilingual's listing 1) are plain."""
    if index == 0 or (product.bilingual and index == 1):
        return plain_title(product.names[index])
    share = 0.5 if product.bilingual else ALT_NAME_SHARE
    return vary_title(rng, product.names[1] if rng.random() < share else product.names[0])


def make_listings(rng: np.random.Generator, products: list[Product]) -> pd.DataFrame:
    """One row per listing: ids, title, image file name, the look to render and the product index."""
    rows, first_look = [], {}
    for index, product in enumerate(products):
        for k in range(product.size):
            look = replace(product.look, seed=int(rng.integers(2**63)))
            if k == 0 and product.family_head is not None and rng.random() < 0.5 + 0.5 * product.forced:
                look = first_look[product.family_head]
            first_look.setdefault(index, look)
            rows.append((index, listing_title(rng, product, k), rng.bytes(16).hex() + ".jpg", look))
    frame = pd.DataFrame(rows, columns=["product", "title", "image", "look"])
    frame["number"] = unique_ints(rng, len(frame), 10**7, 2**32)
    groups = np.array(unique_ints(rng, len(products), 10**5, 2**32), dtype=np.int64)
    frame["label_group"] = groups[frame["product"].to_numpy()]
    return frame


def split_held_out(rng: np.random.Generator, products: list[Product], held_rows: int) -> set[int]:
    """Pick whole unforced products, in random order, until they hold at least held_rows listings."""
    held, count = set(), 0
    for index in rng.permutation(len(products)):
        if count >= held_rows:
            break
        if not products[index].forced:
            held.add(int(index))
            count += products[index].size
    return held


def render(job: tuple[Look, str]) -> str:
    """Render one listing view of a look to a JPEG file and return its image_phash."""
    look, path = job
    rng = np.random.default_rng(look.seed)
    photo = load_photos()[look.photo]
    x0, y0, x1, y1 = look.box
    dx, dy = (x1 - x0) * rng.uniform(-0.08, 0.08), (y1 - y0) * rng.uniform(-0.08, 0.08)
    zoom = rng.uniform(0.85, 1.1)
    cx, cy, hw, hh = (x0 + x1) / 2 + dx, (y0 + y1) / 2 + dy, (x1 - x0) * zoom / 2, (y1 - y0) * zoom / 2
    box = (max(0, int(cx - hw)), max(0, int(cy - hh)), min(photo.width, int(cx + hw)), min(photo.height, int(cy + hh)))
    im = photo.crop(box)
    scale = int(rng.integers(256, 449)) / max(im.size)
    im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))), Image.Resampling.BICUBIC)
    if look.flip:
        im = im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if look.turns:
        im = im.rotate(90 * look.turns, expand=True)
    im = alter(rng, im.point([min(255, int(v * t)) for t in look.tint for v in range(256)]))
    im.save(path, "JPEG", quality=int(rng.integers(65, 96)))
    with Image.open(path) as written:
        return str(imagehash.phash(written))


def alter(rng: np.random.Generator, im: Image.Image) -> Image.Image:
    """Apply a listing's colour jitter, rotation, white padding, blur and text sticker."""
    for enhancer in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
        im = enhancer(im).enhance(rng.uniform(0.8, 1.2))
    if rng.random() < 0.4:
        im = im.rotate(rng.uniform(-10, 10), Image.Resampling.BILINEAR, expand=True, fillcolor="white")
    if rng.random() < 0.4:
        im = pad(rng, im)
    if rng.random() < 0.25:
        im = im.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 1.5)))
    if rng.random() < 0.35:
        sticker(rng, im)
    return im


def pad(rng: np.random.Generator, im: Image.Image) -> Image.Image:
    """Place the image on a white canvas: a square one, or one 6-40% wider and taller."""
    if rng.random() < 0.5:
        width = height = max(im.size)
    else:
        width, height = (int(v * (1 + rng.uniform(0.06, 0.4))) for v in im.size)
    canvas = Image.new("RGB", (width, height), "white")
    canvas.paste(im, (int(rng.integers(width - im.width + 1)), int(rng.integers(height - im.height + 1))))
    return canvas


@lru_cache(maxsize=64)
def font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """Pillow's default font at a pixel size."""
    return ImageFont.load_default(size)


def sticker(rng: np.random.Generator, im: Image.Image) -> None:
    """Draw a promo word or a price near a corner, on a banner half of the time."""
    draw = ImageDraw.Draw(im)
    text = pick(rng, STICKERS) if rng.random() < 0.7 else f"Rp{int(rng.integers(5, 500))}.000"
    face = font(int(max(im.size) * rng.uniform(0.06, 0.12)))
    _, top, right, bottom = draw.textbbox((0, 0), text, font=face)
    x = int(rng.uniform(0.02, 0.1) * im.width) if rng.random() < 0.5 else max(0, im.width - right - 8)
    y = int(rng.uniform(0.02, 0.1) * im.height) if rng.random() < 0.5 else max(0, im.height - bottom - 8)
    colour = pick(rng, STICKER_COLOURS)
    if rng.random() < 0.5:
        draw.rectangle((x - 4, y + top - 4, x + right + 4, y + bottom + 4), fill=colour)
        colour = "white" if colour != "white" else "black"
    draw.text((x, y), text, fill=colour, font=face)


def prepare_out(out: Path) -> None:
    """Create the output folder, clearing earlier outputs; refuse a folder holding anything else."""
    if out.exists():
        foreign = sorted(set(p.name for p in out.iterdir()) - set(OUTPUTS))
        if foreign:
            raise SystemExit(f"{out} holds files this tool did not write: {foreign[:5]}")
        for name in OUTPUTS:
            target = out / name
            if target.is_dir():
                shutil.rmtree(target)
            else:
                target.unlink(missing_ok=True)
    (out / "train_images").mkdir(parents=True)
    (out / "test_images").mkdir()


def write_images(frame: pd.DataFrame, folder: Path) -> list[str]:
    """Render every row's image into folder on WORKERS processes; return the phashes in row order."""
    jobs = [(look, str(folder / image)) for look, image in zip(frame["look"], frame["image"])]
    with multiprocessing.Pool(WORKERS) as pool:
        return list(pool.imap(render, jobs, chunksize=16))


def make_sample(out: Path, seed: int, rows: int, hidden: bool) -> tuple[int, int, int]:
    """Generate and write the sample; return (train rows, train groups, test rows)."""
    rng = np.random.default_rng(seed)
    total = int(np.ceil(rows / (1 - HELD_OUT_SHARE)))
    products = build_catalog(rng, total)
    frame = make_listings(rng, products)
    held = split_held_out(rng, products, total - rows)
    is_held = frame["product"].isin(held)
    train = frame[~is_held].copy()
    test = frame[is_held].copy()
    if not hidden:
        test = test.iloc[np.sort(rng.choice(len(test), VISIBLE_TEST_ROWS, replace=False))].copy()
    train["posting_id"] = "train_" + train["number"].astype(str)
    test["posting_id"] = "test_" + test["number"].astype(str)
    prepare_out(out)
    train["image_phash"] = write_images(train, out / "train_images")
    test["image_phash"] = write_images(test, out / "test_images")
    train, test = train.sort_values("image"), test.sort_values("image")
    columns = ["posting_id", "image", "image_phash", "title"]
    train[[*columns, "label_group"]].to_csv(out / "train.csv", index=False)
    test[columns].to_csv(out / "test.csv", index=False)
    test.assign(matches=test["posting_id"])[["posting_id", "matches"]].to_csv(
        out / "sample_submission.csv", index=False
    )
    test[["posting_id", "label_group"]].to_csv(out.parent / f"{out.name}.solution.csv", index=False)
    return len(train), train["label_group"].nunique(), len(test)


def parse_args() -> argparse.Namespace:
    """Read the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder to write (like shopee-product-matching/)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--rows", type=int, default=2000, help="approximate number of train rows (default 2000)")
    parser.add_argument("--hidden", action="store_true", help="test.csv holds every held-out row (scoring rerun)")
    args = parser.parse_args()
    if args.rows < 100:
        parser.error("--rows must be at least 100")
    return args


def main() -> None:
    """Generate the sample and print a one-line summary."""
    args = parse_args()
    start = time.perf_counter()
    n_train, n_groups, n_test = make_sample(args.out, args.seed, args.rows, args.hidden)
    seconds = time.perf_counter() - start
    print(f"{n_train} train rows in {n_groups} groups, {n_test} test rows -> {args.out} in {seconds:.1f}s")


if __name__ == "__main__":
    main()
