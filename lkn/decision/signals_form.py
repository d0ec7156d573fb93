"""The form of the answer asked for: a composition or small talk (``open_ended``), or a
short answer.

A composition is a text the user will read as prose: a story, a poem, a letter, a list of
ideas or tips, the explanation of a topic, the steps of a practical task, a description,
advice. It has no single right answer, it runs long, and greedy decoding degenerates into
repetition on it (Holtzman et al., ICLR 2020), while a short checkable answer is what greedy
decoding is best at. So ``open_ended`` is not a risk: the rules' mode ignores it. It lets a
measured policy treat the two forms apart (:mod:`lkn.care.policy`).

A request that also carries a signal of a checkable answer (a calculation, a word problem,
code to read, a deduction, ...) is a question, however it asks to be answered ("explain
step by step"), and is not ``open_ended``.
"""

from __future__ import annotations

import re

from lkn.decision.scan import Scan, any_match, words

#: What a composition is called, after a verb that asks for one (within three words).
_PIECES_EN = (r"(?:stor(?:y|ies)|poems?|tales?|fables?|songs?|lyrics|letters?|essays?"
              r"|haikus?|limericks?|speech|e-?mails?|messages?|toasts?|jokes?|dialogues?"
              r"|scripts?|posts?|reviews?|descriptions?|summary|paragraphs?|articles?"
              r"|riddles?|fun facts?|facts? about|sentences?|lines? about|words? about|notes?|quotes?"
              r"|rhymes?|legends?|anecdotes?|slogans?|captions?|sonnets?|ballads?|plans?"
              r"|itinerar(?:y|ies)|schedules?|routines?|menus?|outlines?)\b")
_PIECES_ES = (r"(?:cuentos?|poemas?|poes[ií]as?|historias?|historietas?|relatos?|f[aá]bulas?"
              r"|canci[oó]n|canciones|cartas?|ensayos?|haikus?|discursos?|correos?|mensajes?"
              r"|chistes?|di[aá]logos?|rese[nñ]as?|descripci[oó]n|resumen|p[aá]rrafos?"
              r"|art[ií]culos?|adivinanzas?|datos? curiosos?|dato sobre|frases?|l[ií]neas sobre"
              r"|palabras sobre|notas?|citas?|rimas?|leyendas?|an[eé]cdotas?|esl[oó]ganes|esl[oó]gan"
              r"|sonetos?|baladas?|planes|plan|itinerarios?|rutas?|horarios?|rutinas?|men[uú]s?"
              r"|esquemas?)\b")
#: Things a list of advice or ideas is made of.
_LIST_ITEMS_EN = (r"(?:tips|ideas|ways to|suggestions|recommendations|examples|reasons"
                  r"|things|activities|options|recipes|names|habits|books|games|places"
                  r"|advice|idea|hobby|hobbies|gifts?|presents?)\b")
_LIST_ITEMS_ES = (r"(?:consejos|ideas|maneras de|formas de|sugerencias|recomendaciones"
                  r"|ejemplos|razones|cosas|actividades|opciones|recetas|nombres|h[aá]bitos"
                  r"|libros|juegos|lugares|idea|pasatiempos?|regalos?)\b")
#: Spanish verbs of a practical task after "cómo" (a fact asked with "cómo" is not one:
#: "¿cómo se llama ...?").
_HOWTO_ES = (r"(?:puedo|podr[ií]a|debo|deber[ií]a|hago|hacer|se hace|preparo|preparar"
             r"|se prepara|cambio|cambiar|empiezo|empezar|comienzo|funciona|funcionan"
             r"|aprendo|aprender|cuido|cuidar|mejoro|mejorar|limpio|limpiar|organizo"
             r"|organizar|escribo|escribir|planto|plantar|cocino|cocinar|arreglo|arreglar"
             r"|elijo|elegir|ahorro|ahorrar|consigo|conseguir|evito|evitar|ense[nñ]o"
             r"|ense[nñ]ar|explico|explicar|me preparo)\b")
_ASPECTS_EN = (r"(?:parts|benefits|advantages|disadvantages|differences?|causes|effects"
               r"|consequences|steps|stages|types|kinds|features|symptoms|rules)\b")
_ASPECTS_ES = (r"(?:partes|beneficios|ventajas|desventajas|diferencias?|causas|efectos"
               r"|consecuencias|pasos|etapas|tipos|caracter[ií]sticas|s[ií]ntomas|reglas)\b")

def _asked(verbs: tuple[str, ...], window: str, pieces: str) -> tuple[str, ...]:
    """Each verb, then up to three words, then what it asks for."""
    return tuple(rf"{verb} {window}{pieces}" for verb in verbs)


_WINDOW = r"(?:[\w-]+ ){0,3}?"
_COMPOSITION = words(
    # Writing something: "write a short story", "tell me a bedtime story", "cuéntame un cuento".
    *_asked(("write(?: me)?", "compose", "tell(?: me| us)?", "make up", "create", "draft",
             "make(?: me)?", "need", "want", "love", "like", "brainstorm", "a", "an", "some"),
            _WINDOW, _PIECES_EN),
    *_asked(("escr[ií]be(?:me|nos)?", "redacta(?:me)?", "comp[oó]n", "cu[eé]nta(?:me|nos)?",
             "inv[eé]nta(?:me|te)?", "crea(?:me)?", "me escribes", "haz(?:me)?", "necesito",
             "quiero", "un", "una", "unos", "unas"), _WINDOW, _PIECES_ES),
    r"brainstorm\w*", r"walk me through\b", r"organ[ií]za(?:me|nos)?\b",
    # Lists of ideas and advice.
    r"a list of\b", r"make a list\b", r"can you (?:please )?list\b",
    r"could you (?:please )?list\b", r"enumera\w*", r"lista de\b", r"haz(?:me)? una lista\b",
    r"dame una lista\b",
    *_asked(("give(?: me)?", "suggest", "share", "recommend", "name", "offer", "what are"),
            _WINDOW, _LIST_ITEMS_EN),
    r"tips (?:for|on|to)\b", r"ideas (?:for|on|to)\b", r"advice (?:on|for|about)\b",
    *_asked(("dame", "sugiere(?:me)?", "recomi[eé]nda(?:me)?", "comparte", "nombra",
             "cu[aá]les son"), _WINDOW, _LIST_ITEMS_ES),
    r"consejos (?:para|sobre|de)\b", r"ideas (?:para|de|sobre)\b",
    r"suggest\w*", r"sugier\w*", r"sugi[eé]re\w*", r"recommend\w*", r"recomi[eé]nd\w*",
    r"about each\b", r"de cada uno\b", r"say something\b", r"di(?:le|me|les)? algo\b",
    r"what (?:is|are) (?:a |some |the )?(?:good|best|great|nice) (?:ways?|ideas?|tips"
    r"|things?|places?|books?|gifts?|names?)\b",
    r"cu[aá]l es (?:una |la )?(?:buena|mejor) (?:forma|manera|idea)\b",
    r"cu[aá]les son (?:unas |las )?(?:buenas|mejores) (?:formas|maneras|ideas)\b",
    r"what can i (?:cook|do|make|eat|buy|give|read|watch|say)\b",
    r"qu[eé] (?:puedo|podr[ií]a) (?:cocinar|hacer|preparar|comer|comprar|regalar|leer|ver)\b",
    r"what makes (?:a |an |someone |people )", r"qu[eé] hace que\b",
    r"any (?:tips|advice|ideas|suggestions)\b", r"alg[uú]n consejo\b", r"qu[eé] consejos\b",
    r"what'?s (?:a |an |the )?(?:good|best|quick|easy|nice|great|simple) ",
    r"i can (?:make|cook|do|say|give|buy|write)\b", r"what causes\b",
    r"qu[eé] (?:hago|har[ií]as|me recomiendas|me aconsejas|causa|provoca)\b",
    r"qu[eé] (?:le |les |me |te )?(?:puedo|podr[ií]a|debo|deber[ií]a) (?:decir|regalar|hacer"
    r"|cocinar|llevar|preparar|escribir)\b",
    r"por d[oó]nde (?:empiezo|empezar|comienzo|comenzar)\b",
    r"c[oó]mo (?:me |le |lo |la |les |los |las )?[a-zñáéíóú]+o\b",
    r"what should i (?:pack|bring|do|cook|eat|wear|read|watch|say|write)\b",
    r"qu[eé] (?:debo|deber[ií]a|puedo) (?:llevar|hacer|cocinar|comer|ponerme|leer|ver|decir)\b",
    # Explaining a topic, describing, telling about.
    r"explain\w*", r"expl[ií]ca\w*", r"describe\b",
    r"descr[ií]b(?:a|eme|ela|elo|anos|enos|ir)\b", r"tell me (?:about|more|how|why)\b",
    r"h[aá]bla(?:me|nos) (?:de|sobre)\b",
    rf"what (?:are|is) the (?:\w+ ){{0,2}}?{_ASPECTS_EN}",
    rf"cu[aá]les son (?:los |las )?(?:\w+ ){{0,2}}?{_ASPECTS_ES}",
    # The steps of a practical task.
    r"how (?:do|can|should|could|would) (?:i|we|you|one)\b", r"how to\b",
    r"how (?:do|does) (?:\w+ ){1,3}?work\b", r"the steps\b", r"los pasos\b",
    rf"c[oó]mo {_HOWTO_ES}",
    r"c[oó]mo se (?:\w+ )?(?:hace|prepara|cocina|cuida|limpia|usa|instala|planta)\b",
)
#: "List ..." as the request's first word (not "the list 3, 9, 4"), and a question that
#: opens with "why", whose answer is an explanation.
_OPENINGS = re.compile(r"\n[^\S\n]*(?:please,? )?list\b|\n[^\S\n]*¿?(?:why|por qu[eé])\b"
                         r"|¿por qu[eé]\b")


#: Small talk: a greeting or thanks, with no question but "how are you?".
_GREETING = re.compile(r"¡?(?:hi|hello|hey|good (?:morning|afternoon|evening|night)|thanks|thank"
                       r" you|cheers|hola|buen[oa]s(?: d[ií]as| tardes| noches)?|gracias)\b")
_HOW_ARE_YOU = re.compile(r"(?:how are you(?: doing)?|how'?s it going|¿?qu[eé] tal(?: est[aá]s)?"
                          r"|¿?c[oó]mo (?:est[aá]s|te va|va todo))[^\S\n]*\??")
_ASKED = re.compile(r"[?¿]")
_SMALL_TALK_CHARS = 80


def _small_talk(low: str) -> bool:
    text = low.strip()
    if len(text) > _SMALL_TALK_CHARS or _GREETING.match(text) is None:
        return False
    return _ASKED.search(_HOW_ARE_YOU.sub("", text)) is None


def open_ended(scan: Scan) -> bool:
    """The request asks for a composition, or is small talk (a conversation has no single
    right answer either); the rules drop it beside a checkable signal."""
    return any_match((_COMPOSITION, _OPENINGS), scan.low) or _small_talk(scan.low)
