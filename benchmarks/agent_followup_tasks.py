"""Multi-turn follow-up tasks for the agent benchmark: a few setup turns in one conversation, then a scored
question that only makes sense after them (quantities, places, people, lists the user dictated, and what
June itself said earlier). They were written without reading June's router or prompts, committed before
any change to either, and are not to be edited afterwards.
"""

from __future__ import annotations

from benchmarks.agent_tasks import Answer, Check, Task, _follow_up, all_of, any_of, number, words


def _before(first: str, then: str) -> Check:
    """Both texts appear in the reply (case-insensitive) and `first` comes before `then`."""

    def test(answer: Answer) -> bool:
        reply = answer.reply.lower()
        return first in reply and then in reply and reply.index(first) < reply.index(then)

    return Check(f"before({first}, {then})", test)


QUANTITIES = [
    _follow_up("followup-quantities", "How many grams are in a pound?", "ok and in two and a half pounds?",
               number(1134, tolerance=0.005)),
    _follow_up("followup-quantities", "I'm baking cookies, the recipe takes 250 grams of flour for 24 cookies.",
               "how much flour would I need for 60 of them", number(625, tolerance=0)),
    _follow_up("followup-quantities", "how many feet are there in a mile", "so what's that for three miles",
               number(15840, tolerance=0.005)),
    _follow_up("followup-quantities", "I'm driving at 60 miles an hour and I've still got 150 miles to go.",
               "How long's that gonna take me?",
               any_of(number(2.5), all_of(number(2), number(30)), words(("two and a half", "2 and a half")))),
    _follow_up("followup-quantities", "What's 18 times 12?", "now take away 40 from that", number(176, tolerance=0)),
    _follow_up("followup-quantities", "How many ounces are in a pound?", "and in three and a half pounds?",
               number(56, tolerance=0)),
    _follow_up("followup-quantities", "I ran 5 kilometers this morning.",
               "If I did that every day for two weeks how far would that be altogether",
               any_of(number(70), number(43.5))),
    _follow_up("followup-quantities", "Convert 20 degrees celsius to fahrenheit", "what about 35?",
               number(95, tolerance=0)),
    _follow_up("followup-quantities", "There are 28 kids in my class and I wanna give each of them 3 stickers.",
               "The stickers come in packs of 10, how many packs do I need to buy?", number(9, tolerance=0)),
    _follow_up("followup-quantities", "How many centimeters are in an inch?", "And in a foot?",
               number(30.48, tolerance=0.005)),
]

PLACES = [
    _follow_up("followup-places", "What's the capital of Brazil?", "what language do they speak there",
               words("Portuguese")),
    _follow_up("followup-places", "Where's Machu Picchu?", "What's the capital of that country?", words("Lima")),
    _follow_up("followup-places", "what's the longest river in Africa", "Which sea does it end up flowing into?",
               words("Mediterranean")),
    _follow_up("followup-places", "My sister's flying into Marrakech next week.",
               "which country is that in, and what's the capital there?", all_of(words("Morocco"), words("Rabat"))),
    _follow_up("followup-places", "What's the capital of Canada?", "Which province is it in?", words("Ontario")),
    _follow_up("followup-places", "What's the biggest country in South America?", "and the second biggest?",
               words("Argentina")),
    _follow_up("followup-places", "I'm going to Vienna next month.", "what country's that in again",
               words("Austria")),
    _follow_up("followup-places", "What's the tallest mountain in Africa?", "What country is it in?",
               words("Tanzania")),
    _follow_up("followup-places", ("What's the biggest country in Africa?", "what's its capital"),
               "And what language do most people speak there?", words("Arabic")),
    _follow_up("followup-places", "What's the smallest country in the world?", "Which city is it inside of?",
               words("Rome")),
]

PEOPLE = [
    _follow_up("followup-people", "Who was the first person to walk on the moon?",
               "who walked on the moon with him", words(("Aldrin", "Buzz"))),
    _follow_up("followup-people", "who wrote Harry Potter", "What was the first book called?",
               words(("Philosopher's Stone", "Sorcerer's Stone", "Philosopher’s Stone", "Sorcerer’s Stone"))),
    _follow_up("followup-people", "Who came up with the theory of relativity?",
               "What did he actually get the Nobel Prize for?", words("photoelectric")),
    _follow_up("followup-people", "Who was the first president of the United States?", "and who was his wife",
               words("Martha")),
    _follow_up("followup-people", "Who wrote The Old Man and the Sea?", "He won a Nobel Prize, right? What year?",
               number(1954, tolerance=0)),
    _follow_up("followup-people", "who composed the Moonlight Sonata", "Which country was he born in?",
               words(("Germany", "German", "Bonn"))),
    _follow_up("followup-people", "Who invented the telephone?", "where was he born",
               words(("Edinburgh", "Scotland", "Scottish"))),
    _follow_up("followup-people", "Who wrote the Odyssey?", "What's the other big poem he's known for?",
               words("Iliad")),
    _follow_up("followup-people", "My friends Anna and Ben are coming for dinner. Anna's vegetarian and Ben's "
               "allergic to nuts.", "So what shouldn't I give him?", words(("nut", "nuts", "peanut", "peanuts"))),
    _follow_up("followup-people", "My dad was born in 1958 and my mom's three years younger than him.",
               "what year was she born then?", number(1961, tolerance=0)),
]

LISTS = [
    _follow_up("followup-lists", "Shopping list: milk, eggs, bread, apples and coffee.", "how many things is that",
               number(5, tolerance=0)),
    _follow_up("followup-lists", ("I need to pick up milk, eggs, bread and butter.", "Oh and add bananas to that."),
               "ok read me the whole list back",
               all_of(words("milk"), words(("egg", "eggs")), words("bread"), words("butter"),
                      words(("banana", "bananas")))),
    _follow_up("followup-lists", "My to-do list for Saturday: mow the lawn, call grandma, clean the garage, return "
               "the library books, and buy a birthday card.",
               "ok I already did the lawn and the library books, how many are left?", number(3, tolerance=0)),
    _follow_up("followup-lists", "The kids coming to the party are Emma, Liam, Sofia, Noah and Ava.",
               "wait who was the third one I said", words(("Sofia", "Sophia"))),
    _follow_up("followup-lists", "I need 3 apples, 2 loaves of bread and 6 eggs.",
               "How many things is that in total if I count every single item?", number(11, tolerance=0)),
    _follow_up("followup-lists", ("Add tomatoes, onions and garlic to my list.", "Also rice and chicken."),
               "Put the chicken first and read it back to me", _before("chicken", "tomato")),
    _follow_up("followup-lists", "Names we like for the puppy: Max, Luna, Charlie, Bella.",
               "take Charlie off, which ones are still on there?",
               all_of(words("Max"), words("Luna"), words("Bella"))),
    _follow_up("followup-lists", ("I'm keeping score for game night. Sam has 12 points, Ria has 9 and Dev has 15.",
                                  "Ria just got 8 more."), "who's winning now", all_of(words("Ria"), number(17))),
    _follow_up("followup-lists", "Grocery list: 2 cartons of milk at 3 dollars each, a bag of rice for 8 dollars, "
               "and cheese for 5.", "what's all that gonna cost me", number(19, tolerance=0)),
    _follow_up("followup-lists", "To-do: laundry, groceries, email Sarah, fix the bike.",
               "Move emailing Sarah to the top and tell me the new order", _before("sarah", "laundry")),
]

EARLIER_ANSWERS = [
    _follow_up("followup-earlier-answers", "What's 48 plus 76?", "take what you just told me and divide it by four",
               number(31, tolerance=0)),
    _follow_up("followup-earlier-answers", "How many days are in a leap year?", "and what's that number times 24",
               number(8784, tolerance=0)),
    _follow_up("followup-earlier-answers", "What's the boiling point of water in Fahrenheit?",
               "Subtract the freezing point from the number you just said", number(180, tolerance=0)),
    _follow_up("followup-earlier-answers", "How many planets are in the solar system?", "multiply your answer by 12",
               number(96, tolerance=0)),
    _follow_up("followup-earlier-answers", "What year did World War Two end?", "how many years before 2000 was that",
               number(55, tolerance=0)),
    _follow_up("followup-earlier-answers", "What's the square root of 144?", "Now cube the answer you gave me",
               number(1728, tolerance=0)),
    _follow_up("followup-earlier-answers", "How many bones does an adult human have?",
               "what's half of the number you just said?", number(103, tolerance=0)),
    _follow_up("followup-earlier-answers", "What's the freezing point of water in Fahrenheit?",
               "ok what's that same temperature in kelvin", number(273.15, tolerance=0.001)),
    _follow_up("followup-earlier-answers", ("How many legs does an insect have?", "And a spider?"),
               "add the two numbers you just gave me together", number(14, tolerance=0)),
    _follow_up("followup-earlier-answers", ("What's the capital of Australia?", "And what's its biggest city?"),
               "Which of the two cities you just named is the capital again?", words("Canberra")),
]

FOLLOWUP_TASKS: list[Task] = [*QUANTITIES, *PLACES, *PEOPLE, *LISTS, *EARLIER_ANSWERS]
