"""Facts and capitals: written out, in English and Spanish."""

from __future__ import annotations

from lkn.eval.build_set.answers import Prompt, number, text

#: (the country in English, in Spanish, the names its capital goes by).
CAPITALS = [
    ("France", "Francia", ["Paris", "París"]), ("Spain", "España", ["Madrid"]),
    ("Italy", "Italia", ["Rome", "Roma"]), ("Germany", "Alemania", ["Berlin", "Berlín"]),
    ("Portugal", "Portugal", ["Lisbon", "Lisboa"]), ("Japan", "Japón", ["Tokyo", "Tokio"]),
    ("Canada", "Canadá", ["Ottawa"]), ("Australia", "Australia", ["Canberra"]),
    ("Mexico", "México", ["Mexico City", "Ciudad de México", "CDMX", "México D.F.", "Mexico, D.F."]),
    ("Argentina", "Argentina", ["Buenos Aires"]), ("Peru", "Perú", ["Lima"]),
    ("Chile", "Chile", ["Santiago"]), ("Colombia", "Colombia", ["Bogotá", "Bogota"]),
    ("Egypt", "Egipto", ["Cairo", "El Cairo"]), ("Russia", "Rusia", ["Moscow", "Moscú"]),
    ("China", "China", ["Beijing", "Pekín", "Peking"]), ("India", "India", ["New Delhi", "Nueva Delhi", "Delhi"]),
    ("Brazil", "Brasil", ["Brasília", "Brasilia"]), ("Greece", "Grecia", ["Athens", "Atenas"]),
    ("Norway", "Noruega", ["Oslo"]), ("Sweden", "Suecia", ["Stockholm", "Estocolmo"]),
    ("Poland", "Polonia", ["Warsaw", "Varsovia"]), ("Ireland", "Irlanda", ["Dublin", "Dublín"]),
    ("Kenya", "Kenia", ["Nairobi"]), ("Cuba", "Cuba", ["Havana", "La Habana"]),
    ("Venezuela", "Venezuela", ["Caracas"]), ("Austria", "Austria", ["Vienna", "Viena"]),
    ("Turkey", "Turquía", ["Ankara"]), ("South Korea", "Corea del Sur", ["Seoul", "Seúl"]),
    ("Netherlands", "Países Bajos", ["Amsterdam", "Ámsterdam"]),
]

FACTS: list[Prompt] = [
    ("en", "How many planets are in the Solar System?", number(8)),
    ("es", "¿Cuántos planetas hay en el sistema solar?", number(8)),
    ("en", "What is the chemical symbol for gold?", text("Au")),
    ("es", "¿Cuál es el símbolo químico del oro?", text("Au")),
    ("en", "What is the chemical formula of water?", text("H2O", "H₂O")),
    ("es", "¿Cuál es la fórmula química del agua?", text("H2O", "H₂O")),
    ("en", "Which planet is known as the Red Planet?", text("Mars")),
    ("es", "¿Qué planeta es conocido como el planeta rojo?", text("Marte")),
    ("en", "Who wrote 'Don Quixote'?", text("Cervantes")),
    ("es", "¿Quién escribió 'Don Quijote de la Mancha'?", text("Cervantes")),
    ("en", "Who wrote 'Romeo and Juliet'?", text("Shakespeare")),
    ("es", "¿Quién escribió 'Romeo y Julieta'?", text("Shakespeare")),
    ("en", "What is the largest ocean on Earth?", text("Pacific")),
    ("es", "¿Cuál es el océano más grande de la Tierra?", text("Pacífico", "Pacifico")),
    ("en", "How many continents are there (in the usual seven-continent model)?", number(7)),
    ("es", "¿Cuántos continentes hay según el modelo habitual de siete continentes?", number(7)),
    ("en", "At what temperature in degrees Celsius does water boil at sea level?", number(100)),
    ("es", "¿A cuántos grados Celsius hierve el agua al nivel del mar?", number(100)),
    ("en", "At what temperature in degrees Celsius does water freeze?", number(0)),
    ("es", "¿A cuántos grados Celsius se congela el agua?", number(0)),
    ("en", "How many legs does a spider have?", number(8)),
    ("es", "¿Cuántas patas tiene una araña?", number(8)),
    ("en", "What gas do plants absorb from the air for photosynthesis?", text("carbon dioxide", "CO2", "CO₂")),
    ("es", "¿Qué gas absorben las plantas del aire para la fotosíntesis?", text("dióxido de carbono", "CO2", "CO₂", "anhídrido carbónico")),
    ("en", "What is the largest planet in the Solar System?", text("Jupiter")),
    ("es", "¿Cuál es el planeta más grande del sistema solar?", text("Júpiter", "Jupiter")),
    ("en", "In which year did humans first land on the Moon?", number(1969)),
    ("es", "¿En qué año llegó el ser humano a la Luna por primera vez?", number(1969)),
    ("en", "What is the hardest natural material?", text("diamond")),
    ("es", "¿Cuál es el material natural más duro?", text("diamante")),
    ("en", "How many days are there in a leap year?", number(366)),
    ("es", "¿Cuántos días tiene un año bisiesto?", number(366)),
    ("en", "What language is mainly spoken in Brazil?", text("Portuguese")),
    ("es", "¿Qué idioma se habla principalmente en Brasil?", text("portugués", "portugues")),
    ("en", "Who painted the Mona Lisa?", text("Leonardo", "da Vinci")),
    ("es", "¿Quién pintó la Mona Lisa?", text("Leonardo", "da Vinci")),
    ("en", "What is the smallest prime number?", number(2)),
    ("es", "¿Cuál es el número primo más pequeño?", number(2)),
    ("en", "How many sides does a hexagon have?", number(6)),
    ("es", "¿Cuántos lados tiene un hexágono?", number(6)),
]


def capitals() -> list[Prompt]:
    """Every country's capital, asked in English, then in Spanish."""
    out: list[Prompt] = []
    for en, es, aliases in CAPITALS:
        out.append(("en", f"What is the capital of {en}?", text(*aliases)))
        out.append(("es", f"¿Cuál es la capital de {es}?", text(*aliases)))
    return out
