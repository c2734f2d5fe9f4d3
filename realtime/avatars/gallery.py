"""The built-in characters the web client offers: curated, named, stable.

Each entry is a seed plus the style choices that make it distinct; everything not
named is drawn from the seed, so an entry's look never changes unless this file
does. Across the set: every build (chibi, child, adult, long-limbed), flat and soft
shading, with and without outlines, every hair style and pattern, and accessories.
"""

from __future__ import annotations

from realtime.avatars.character import Character, make_character

_GALLERY: dict[str, tuple[int, dict[str, object]]] = {
    "pip": (101, dict(build="chibi", head_shape="round", hair_style="bun", hair=(240, 120, 170),
                      top=(255, 220, 90), top_pattern="dots", pattern_color=(255, 255, 255),
                      legwear="skirt", bottom=(120, 80, 200), shading=0.0, outline=0.05,
                      accessories=("bow",), accent=(220, 40, 90))),
    "momo": (102, dict(build="chibi", head_shape="heart", hair_style="long", hair=(30, 24, 20),
                       top=(90, 200, 180), top_pattern="plain", shading=1.0, outline=0.03,
                       skin=(255, 224, 196), accessories=("headband",), accent=(250, 250, 250))),
    "bolt": (103, dict(build="chibi", head_shape="square", hair_style="spiky",
                       hair=(235, 205, 120), top=(230, 70, 50), top_pattern="stripes",
                       pattern_color=(250, 230, 60), legwear="shorts", shading=0.5,
                       outline=0.06, skin=(198, 140, 100), accessories=())),
    "juniper": (104, dict(build="child", head_shape="round", hair_style="bob",
                          hair=(200, 70, 40), top=(60, 150, 90), top_pattern="check",
                          pattern_color=(240, 230, 200), legwear="trousers", shading=0.0,
                          outline=0.04, accessories=("glasses",))),
    "otto": (105, dict(build="child", head_shape="oval", hair_style="short", hair=(90, 56, 32),
                       top=(40, 90, 170), top_pattern="stripes", pattern_color=(250, 250, 250),
                       legwear="shorts", shading=1.0, outline=0.0, skin=(160, 105, 70),
                       accessories=("hat",), accent=(230, 150, 30))),
    "kiki": (106, dict(build="child", head_shape="heart", hair_style="long",
                       hair=(120, 80, 200), top=(250, 160, 200), legwear="skirt",
                       bottom=(70, 60, 120), shading=0.5, outline=0.03,
                       accessories=("earrings", "bow"), accent=(80, 200, 230))),
    "ada": (107, dict(build="adult", head_shape="oval", hair_style="bob", hair=(30, 24, 20),
                      top=(30, 30, 40), top_pattern="plain", legwear="trousers",
                      bottom=(200, 40, 60), shading=0.0, outline=0.04, skin=(241, 194, 160),
                      accessories=("glasses", "earrings"), accent=(230, 190, 60))),
    "marcus": (108, dict(build="adult", head_shape="square", hair_style="short",
                         hair=(30, 24, 20), top=(170, 40, 40), top_pattern="check",
                         pattern_color=(30, 30, 30), legwear="trousers", bottom=(50, 60, 80),
                         shading=1.0, outline=0.025, skin=(110, 70, 48), accessories=())),
    "sol": (109, dict(build="adult", head_shape="round", hair_style="spiky",
                      hair=(60, 150, 230), top=(250, 250, 250), top_pattern="dots",
                      pattern_color=(60, 150, 230), legwear="shorts", bottom=(40, 40, 40),
                      shading=0.5, outline=0.05, skin=(186, 220, 255),
                      accessories=("scarf",), accent=(250, 200, 40))),
    "greta": (110, dict(build="adult", head_shape="heart", hair_style="long",
                        hair=(235, 205, 120), top=(70, 120, 70), legwear="skirt",
                        bottom=(90, 60, 40), shading=1.0, outline=0.0, skin=(255, 236, 220),
                        accessories=("hat",), accent=(120, 40, 50))),
    "stilt": (111, dict(build="long", head_shape="oval", hair_style="bald", top=(240, 200, 60),
                        top_pattern="stripes", pattern_color=(30, 30, 30), legwear="trousers",
                        bottom=(30, 30, 30), shading=0.0, outline=0.05, skin=(224, 172, 130),
                        accessories=("glasses",))),
    "willow": (112, dict(build="long", head_shape="oval", hair_style="long",
                         hair=(40, 170, 120), top=(150, 200, 240), legwear="skirt",
                         bottom=(240, 240, 240), shading=1.0, outline=0.02,
                         skin=(196, 240, 190), accessories=("headband", "earrings"),
                         accent=(250, 120, 60))),
    "rook": (113, dict(build="long", head_shape="square", hair_style="bun", hair=(230, 230, 235),
                       top=(60, 40, 80), top_pattern="check", pattern_color=(160, 120, 200),
                       legwear="trousers", bottom=(60, 40, 80), shading=0.5, outline=0.04,
                       skin=(198, 140, 100), accessories=("scarf",), accent=(200, 60, 60))),
    "nova": (114, dict(build="adult", head_shape="round", hair_style="bun", hair=(240, 120, 170),
                       top=(40, 40, 60), top_pattern="dots", pattern_color=(250, 220, 90),
                       legwear="shorts", bottom=(90, 200, 220), shading=0.0, outline=0.06,
                       skin=(255, 224, 196), accessories=("bow", "glasses"),
                       accent=(250, 220, 90))),
}


def names() -> list[str]:
    """The built-in character names, in display order."""
    return list(_GALLERY)


def get(name: str) -> Character:
    """The named built-in character. KeyError (listing the names) for an unknown one."""
    if name not in _GALLERY:
        raise KeyError(f"unknown character {name!r}; built-in characters: {', '.join(_GALLERY)}")
    seed, style = _GALLERY[name]
    return make_character(seed, name=name, **style)
