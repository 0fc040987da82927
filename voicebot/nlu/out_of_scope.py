"""What callers of any small business say that no bot intent covers: the "none" class.

The statistical tier needs to have seen sentences that belong to no intent,
or it would map every utterance to the nearest intent it knows. These are
generic phone topics (directions, parking, prices, jobs, complaints, small
talk, mishearings), not this bot's phrasings; an intent file adds its own
with ``none_examples``.
"""

from __future__ import annotations

OUT_OF_SCOPE: dict[str, tuple[str, ...]] = {
    "en": (
        "do you have parking", "where exactly are you located", "how do i get to you",
        "is there a bus stop nearby", "do you deliver", "can i order takeaway",
        "how much does it cost", "what are your prices like", "do you take credit cards",
        "do you have vegetarian options", "is the food gluten free", "do you have a kids menu",
        "what is on the menu today", "do you serve pizza", "are dogs allowed",
        "is there wheelchair access", "do you have wifi", "can i bring my own wine",
        "are you hiring", "i would like to apply for a job", "can i speak about a delivery invoice",
        "i left my umbrella there yesterday", "i lost my wallet in your restaurant",
        "i want to make a complaint about my meal", "the food was cold last time",
        "do you sell gift vouchers", "can i buy a gift card", "is this the pharmacy",
        "sorry wrong number", "i think i dialled the wrong number", "how is the weather there",
        "did you watch the game last night", "my cat is sick", "what is the meaning of life",
        "can you tell me a joke", "who won the election", "i need a taxi",
        "is this the hotel", "what is your email address", "can you send me the menu",
        "do you have a website", "are you on instagram", "who is the chef",
        "is the owner there", "i am calling from the bank", "this is a survey",
        "would you like to switch your electricity provider", "the music is too loud",
        "banana keyboard purple", "testing testing one two", "hmm let me see",
        "the quick brown fox", "i forgot what i wanted to say", "my phone battery is low",
        "can you hear the traffic", "wait a second my kid is crying", "hold on",
        "just a moment", "one second please", "no idea", "whatever", "i dont know",
        "it doesnt matter", "is it spicy", "how big are the portions", "do you do catering",
        "can we bring a birthday cake", "do you have a private room", "is there a dress code",
        "do you have live music", "can i pay in cash", "do you have high chairs",
        "is there outdoor seating", "do you show football", "what wine do you recommend",
    ),
    "de": (
        "haben sie parkplätze", "wo genau sind sie", "wie komme ich zu ihnen",
        "gibt es eine bushaltestelle in der nähe", "liefern sie auch",
        "kann ich etwas zum mitnehmen bestellen",
        "was kostet das", "wie sind ihre preise", "kann ich mit karte zahlen",
        "haben sie vegetarische gerichte", "ist das essen glutenfrei", "haben sie eine kinderkarte",
        "was steht heute auf der karte", "haben sie pizza", "sind hunde erlaubt",
        "ist es barrierefrei", "haben sie wlan", "darf ich meinen eigenen wein mitbringen",
        "suchen sie personal", "ich möchte mich bewerben",
        "ich habe meinen schirm bei ihnen vergessen",
        "ich habe mein portemonnaie verloren", "ich möchte mich beschweren",
        "das essen war letztes mal kalt", "verkaufen sie gutscheine", "ist da die apotheke",
        "entschuldigung falsch verbunden", "ich habe mich verwählt", "wie ist das wetter bei ihnen",
        "haben sie das spiel gestern gesehen", "meine katze ist krank",
        "erzählen sie mir einen witz",
        "ich brauche ein taxi", "ist das das hotel", "wie ist ihre email adresse",
        "können sie mir die speisekarte schicken", "haben sie eine webseite", "wer ist der koch",
        "ist der chef da", "hier ist die bank", "das ist eine umfrage",
        "möchten sie den stromanbieter wechseln", "die musik ist zu laut", "banane tastatur lila",
        "test test eins zwei", "moment ich muss überlegen",
        "ich habe vergessen was ich sagen wollte",
        "mein akku ist gleich leer", "warten sie kurz", "einen augenblick", "keine ahnung",
        "egal", "ich weiss nicht", "ist das scharf", "wie gross sind die portionen",
        "machen sie auch catering", "dürfen wir einen geburtstagskuchen mitbringen",
        "haben sie einen separaten raum", "gibt es eine kleiderordnung", "haben sie live musik",
        "kann ich bar bezahlen", "haben sie kinderstühle", "kann man draussen sitzen",
        "zeigen sie fussball", "welchen wein empfehlen sie",
    ),
}
