"""Chat: open prompts graded for being answered, whole and on topic (the topic stems)."""

from __future__ import annotations

from lkn.eval.build_set.answers import Prompt, open_

#: (language, prompt, topic stems).
CHAT = [
    ("en", "Give me three tips for sleeping better.", ["sleep", "bed", "night", "rest"]),
    ("es", "Dame tres consejos para dormir mejor.", ["dormir", "sueño", "cama", "noche", "descans"]),
    ("en", "Write a short poem about the sea.", ["sea", "ocean", "wave", "water", "shore"]),
    ("es", "Escribe un poema corto sobre el mar.", ["mar", "ola", "agua", "océano", "oceano", "playa"]),
    ("en", "What should I pack for a weekend camping trip?", ["tent", "sleeping", "water", "food", "camp"]),
    ("es", "¿Qué debo llevar para un fin de semana de acampada?", ["tienda", "saco", "agua", "comida", "acampa"]),
    ("en", "Suggest a name for a friendly orange cat.", ["cat", "name", "orange", "ginger"]),
    ("es", "Sugiere un nombre para un gato naranja y simpático.", ["gato", "nombre", "naranja"]),
    ("en", "Describe a sunny day at the beach in two sentences.", ["sun", "beach", "sand", "sea", "wave"]),
    ("es", "Describe en dos frases un día soleado en la playa.", ["sol", "playa", "arena", "mar", "ola"]),
    ("en", "How can I make my mornings less stressful?", ["morning", "stress", "plan", "sleep", "time"]),
    ("es", "¿Cómo puedo hacer que mis mañanas sean menos estresantes?", ["mañana", "estrés", "estres", "tiempo", "dormir", "plan"]),
    ("en", "Tell me a fun fact about dolphins.", ["dolphin"]),
    ("es", "Cuéntame un dato curioso sobre los delfines.", ["delf"]),
    ("en", "What are some good habits for staying healthy?", ["health", "exercise", "water", "sleep", "eat", "diet"]),
    ("es", "¿Cuáles son algunos buenos hábitos para mantenerse sano?", ["salud", "sano", "ejercicio", "agua", "dormir", "comer", "dieta"]),
    ("en", "Write a friendly message inviting a friend to dinner.", ["dinner", "invite", "friend", "join"]),
    ("es", "Escribe un mensaje amable invitando a un amigo a cenar.", ["cena", "cenar", "invit", "amig"]),
    ("en", "Why do people like gardening?", ["garden", "plant", "flower", "grow", "nature"]),
    ("es", "¿Por qué a la gente le gusta la jardinería?", ["jard", "planta", "flor", "naturaleza", "cultiv"]),
    ("en", "Recommend a hobby for someone who likes being outdoors.", ["hik", "outdoor", "walk", "garden", "cycl", "camp", "fish", "hobby"]),
    ("es", "Recomienda un pasatiempo para alguien a quien le gusta estar al aire libre.", ["senderismo", "aire libre", "caminar", "jardin", "bici", "acampar", "pesca", "pasatiempo"]),
    ("en", "What is a good way to learn a new language?", ["language", "practice", "speak", "learn", "word"]),
    ("es", "¿Cuál es una buena forma de aprender un idioma nuevo?", ["idioma", "practic", "hablar", "aprend", "palabra"]),
    ("en", "Write two sentences about autumn.", ["autumn", "fall", "leaves", "leaf", "cool"]),
    ("es", "Escribe dos frases sobre el otoño.", ["otoño", "otono", "hojas", "hoja", "fresco"]),
    ("en", "How do I make a cup of tea?", ["tea", "water", "boil", "cup"]),
    ("es", "¿Cómo se prepara una taza de té?", ["té", "agua", "hervir", "taza"]),
    ("en", "Give me an idea for a birthday present for my mother.", ["gift", "present", "mother", "mom", "birthday"]),
    ("es", "Dame una idea de regalo de cumpleaños para mi madre.", ["regalo", "madre", "mamá", "cumpleaños"]),
    ("en", "What can I cook with rice and eggs?", ["rice", "egg", "fried", "cook"]),
    ("es", "¿Qué puedo cocinar con arroz y huevos?", ["arroz", "huevo", "frito", "cocin"]),
    ("en", "Say something encouraging to a student before an exam.", ["exam", "luck", "you", "study", "best"]),
    ("es", "Dile algo alentador a un estudiante antes de un examen.", ["examen", "suerte", "estudi", "puedes", "confía", "confia"]),
    ("en", "Describe your ideal weekend.", ["weekend", "relax", "friend", "day"]),
    ("es", "Describe tu fin de semana ideal.", ["fin de semana", "relaj", "amig", "día", "dia"]),
    ("en", "What are the benefits of reading books?", ["read", "book", "knowledge", "imagin"]),
    ("es", "¿Cuáles son los beneficios de leer libros?", ["leer", "libro", "conocimiento", "imagina", "lectura"]),
    ("en", "Tell me a short story about a brave mouse.", ["mouse", "brave"]),
    ("es", "Cuéntame una historia corta sobre un ratón valiente.", ["ratón", "raton", "valiente"]),
    ("en", "How can I stay motivated when working from home?", ["work", "home", "motivat", "routine", "break"]),
    ("es", "¿Cómo puedo mantenerme motivado trabajando desde casa?", ["trabaj", "casa", "motiva", "rutina", "descanso"]),
    ("en", "What makes a good friend?", ["friend", "trust", "listen", "honest", "support"]),
    ("es", "¿Qué hace que alguien sea un buen amigo?", ["amig", "confianza", "escuch", "honest", "apoy"]),
]


def chat() -> list[Prompt]:
    return [(lang, prompt, open_(*topic)) for lang, prompt, topic in CHAT]
