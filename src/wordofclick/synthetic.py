"""Synthetic, unlabeled reviews in any number, for scale tests only.

**These texts are synthetic and unlabeled.** They are put together at random from phrase banks in
this module, so they look and measure like reviews (length, tone, typos, all-caps, emoji, handles
and hashtags, long complaint letters) but carry no labels and no meaning a model should learn.
Use them to benchmark scoring, aggregation and the nightly job on millions of rows; **never use
them for training or evaluation**. The hand-written, labeled corpus is a separate thing:
:func:`wordofclick.datasets.load_corpus`. Nothing here reads from or writes to it, synthetic
company names have three words (``Golden Fox Bistro``) and every ``review_id`` starts with
``syn-`` so the two cannot be mixed up by accident.

    >>> for batch in generate_reviews(1_000_000, companies=5_000):  # doctest: +SKIP
    ...     score(batch)
    >>> write_reviews("reviews.parquet", 1_000_000, companies=5_000)  # doctest: +SKIP

Rows come in :data:`~wordofclick.schema.REVIEW_SCHEMA`. Companies are spread over twelve
industries, each with its own vocabulary, and get skewed review volumes, their own rating mix and
their own balance of service against product remarks. Dates spread over ``days`` days from
``start`` with slow growth, a weekly rhythm and a daily one. Channels come in realistic shares;
``shares`` and ``likes`` are filled for social channels only, heavy-tailed. ``rating`` (1-5)
follows each review's tone with some noise and is missing for most social posts.

Everything is drawn with numpy for blocks of :data:`BLOCK_ROWS` rows and the texts are joined by
Arrow compute kernels, not per-row Python. Row ``i`` depends only on ``seed`` and ``i`` (and the
company, day and start arguments), never on ``batch_rows`` or on ``n``: the first 100 rows of a
million-row run are the 100 rows of a 100-row run. ``review_id`` is ``syn-<seed>-<row>``, unique
within a run and stable for a seed. Memory is bounded by one batch plus one block, whatever ``n``.
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timezone
from functools import cache
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from wordofclick.errors import ConfigError
from wordofclick.schema import CHANNELS, REVIEW_SCHEMA

__all__ = [
    "BLOCK_ROWS",
    "DEFAULT_START",
    "INDUSTRIES",
    "company_industries",
    "company_names",
    "generate_reviews",
    "write_reviews",
]

# Part of the determinism contract: rows are drawn in blocks of this size, each from its own
# random stream, so changing it changes every generated text.
BLOCK_ROWS = 10_000
# The default year ends on 2026-11-21, the as-of date used in the docs and the aggregate benchmark.
DEFAULT_START = datetime(2025, 11, 21, tzinfo=timezone.utc)

_MAX_BODY = 28  # sentences in the longest complaint letter
_US_PER_DAY = 86_400_000_000
_US_PER_HOUR = 3_600_000_000

# --- phrase banks ------------------------------------------------------------------------------
# Categories of phrase; the tone-dependent ones take three consecutive codes: negative, mixed,
# positive (``code + tone``).
_SERVICE_COMPLAINT, _PRODUCT_COMPLAINT, _STAFF_PRAISE, _PRODUCT_PRAISE, _NEUTRAL = range(5)
_OPENER, _CLOSER, _SHORT, _LETTER_OPEN, _LETTER_CLOSE, _HASHTAG, _EMOJI = range(5, 26, 3)
_N_CATEGORIES = 26
_BODY_CATEGORIES = 5

_GENERIC: dict[int, tuple[str, ...]] = {
    _SERVICE_COMPLAINT: (
        "The {staff} was rude and clearly did not want to help.",
        "I waited {n_min} minutes before anyone even acknowledged me.",
        "I contacted {contact} {n_times} times and nobody ever got back to me.",
        "When I complained, the {staff} just shrugged and walked off.",
        "They promised to sort out {event} and then did absolutely nothing.",
        "Nobody at {contact} could give me a straight answer.",
        "I was on hold for {n_min} minutes and then the line went dead.",
        "The {staff} argued with me instead of listening to the problem.",
        "Zero apology, zero follow-up, zero interest.",
        "Great job ignoring your customers, really impressive stuff.",
        "I asked to speak to a manager and was told nobody was available, again.",
        "My emails to {contact} have gone unanswered for {n_weeks} weeks.",
        "I got transferred {n_times} times and every person told me something different.",
        "The {staff} was on their phone the entire time and barely looked up.",
        "There was no communication at all about {event}.",
        "How hard is it to answer one simple question?",
        "Support never answered about my {product}, which {product_bad}.",
        "The staff seemed completely untrained and nobody knew what anyone else was doing.",
        "I have been chasing a refund for {n_days} days and I am still waiting.",
        "The {staff} hung up on me. HUNG UP ON ME.",
        "Oh sure, keep me waiting another hour, it's not like I have a job.",
        "They were not rude exactly, just completely useless.",
        "Every time I call I have to explain {event} from scratch because nobody writes "
        "anything down.",
        "The {staff} was condescending and talked to me like I was an idiot.",
        "They closed my complaint without even replying to it.",
        "I was promised a call back within 24 hours. That was {n_days} days ago.",
        "The chat bot kept sending me in circles and there was no way to reach a human.",
        "Honestly the worst customer service I have dealt with in years.",
        "Nobody took responsibility, everyone just blamed another department.",
        "The {staff} made a mistake with {event} and then refused to fix it.",
    ),
    _PRODUCT_COMPLAINT: (
        "The {product} {product_bad}.",
        "Honestly, the {product} {product_bad}, which at these prices is unacceptable.",
        "Paid good money and the {product} {product_bad}.",
        "Quality has really gone downhill; this time the {product} {product_bad}.",
        "Second time in a row the {product} {product_bad}.",
        "Way overpriced for what you actually get.",
        "The {product} is not worth half of what they charge for it.",
        "I would not recommend the {product} to anyone.",
        "The people were lovely, but the {product} {product_bad}.",
        "Everything about the {product} feels cheap and rushed.",
        "Not sure how the {product} ever passed a quality check.",
        "For {money} I expected the {product} to be a lot better.",
        "On paper the {product} sounds great, in reality it is a letdown.",
        "The {product} used to be good, not any more.",
        "Hidden fees everywhere, the price they advertise is not the price you pay.",
        "I was polite about it, but the {product} really was not acceptable.",
        "The {product} {product_bad} and the replacement was no better.",
        "Cheap, flimsy and disappointing.",
        "The {product} is a joke, plain and simple.",
    ),
    _STAFF_PRAISE: (
        "The {staff} was incredibly friendly and patient with us.",
        "Big shout out to {name}, the {staff}, who went above and beyond.",
        "I got through to {contact} straight away and they fixed it in minutes.",
        "Everyone was polite and helpful from start to finish.",
        "The {staff} even followed up the next day to check everything was fine.",
        "Not rude at all, in fact genuinely kind and helpful.",
        "Service was quick and nobody made us feel rushed.",
        "{name} at {contact} sorted out {event} without any fuss.",
        "The {staff} explained everything clearly and never made me feel stupid.",
        "They owned the mistake, apologised and made it right.",
        "Best customer service I have had in a long time.",
        "The {staff} remembered us from last time, which was a lovely touch.",
        "When something went wrong with {event}, they called me before I even noticed.",
        "Really professional team, they clearly care about their customers.",
        "The {staff} was patient with my endless questions.",
        "Friendly, quick and honest, what more could you want.",
    ),
    _PRODUCT_PRAISE: (
        "The {product} {product_good}.",
        "Really impressed with the {product}.",
        "Best {product} I have had in years.",
        "Good value for money, honestly.",
        "The {product} {product_good}, exactly as advertised.",
        "The {product} is worth every penny.",
        "Quality is consistently high and the {product} {product_good}.",
        "I was sceptical, but the {product} {product_good}.",
        "Can't fault the {product} at all.",
        "The {product} is miles better than what I had before.",
        "Prices are fair and the {product} {product_good}.",
        "The {product} alone is a reason to go back.",
    ),
    _NEUTRAL: (
        "We went on a {weekday} {time_of_day}.",
        "I have been a customer for {n_years} years.",
        "This was my first time using this {venue}.",
        "Booked everything through their website.",
        "Prices are about what you would expect.",
        "Does anyone know if they have changed the {product} recently?",
        "A friend recommended them to me.",
        "I switched to them from another {venue} last year.",
        "Just sharing my experience in case it helps someone.",
        "It was busy, probably because of the holidays.",
        "For context, this was on a {weekday}.",
        "Question: do they offer student discounts?",
        "I am writing this a few days after the fact.",
        "Not sure if this matters, but I paid by card.",
        "They have a new logo apparently.",
        "Will update this review if anything changes.",
        "Anyone else had the same thing happen?",
        "There are plenty of alternatives out there.",
    ),
    _OPENER: (
        "Where do I even start.",
        "Avoid.",
        "Wow, what a disappointment.",
        "I rarely write reviews but I need to warn people.",
        "Long-time customer, very unhappy.",
        "Updated review, and not in a good way.",
        "Terrible experience with this {venue}.",
        "DO NOT USE THIS COMPANY.",
        "Ugh.",
        "Absolutely furious right now.",
        "I really wanted to like this {venue}.",
        "Sorry, but this needs saying.",
        "One star is generous.",
        "What a shambles.",
        "Buyer beware.",
    ),
    _OPENER + 1: (
        "Mixed feelings about this one.",
        "Some good, some bad.",
        "It was OK.",
        "Not bad, not great.",
        "Honest review, the good and the bad.",
        "Three stars, here is why.",
        "Hard to rate this {venue}.",
        "Average at best.",
    ),
    _OPENER + 2: (
        "What a lovely experience!",
        "Five stars, no question.",
        "Cannot recommend this {venue} enough.",
        "Pleasantly surprised.",
        "Had a great experience.",
        "Finally, a {venue} that gets it right.",
        "Wow!",
        "So glad we found this {venue}.",
        "Just wanted to say thank you.",
        "Hands down the best {venue} around.",
    ),
    _CLOSER: (
        "Never again.",
        "Save your money.",
        "Zero stars if I could.",
        "Take your business elsewhere.",
        "Do better.",
        "I am done with them.",
        "Avoid at all costs.",
        "Shocking.",
        "Disgraceful.",
        "Ridiculous.",
        "Looking for a new {venue} now.",
        "Unbelievable.",
        "Seriously, go anywhere else.",
    ),
    _CLOSER + 1: (
        "Might give them another chance.",
        "We will see.",
        "Three stars for now.",
        "Could be better, could be worse.",
        "Not sure I will be back.",
        "Room for improvement.",
    ),
    _CLOSER + 2: (
        "Will definitely be back!",
        "Highly recommend.",
        "Thanks again!",
        "Keep it up.",
        "10/10.",
        "Would recommend to anyone.",
        "Brilliant.",
        "Thank you so much!",
        "You have a customer for life.",
    ),
    _SHORT: (
        "Terrible.",
        "Never again!",
        "Worst {venue} ever.",
        "rude staff",
        "Avoid.",
        "Awful service, awful {product}.",
        "Useless.",
        "scam",
        "Total waste of money.",
        "Still waiting for a reply.",
        "Horrible {product}.",
        "NOPE.",
        "Do not bother.",
        "rude {staff}, never going back",
    ),
    _SHORT + 1: (
        "It's fine.",
        "ok I guess",
        "Decent.",
        "Meh.",
        "Nothing special.",
        "Good {product}, slow service.",
        "Friendly staff, shame about the {product}.",
        "average",
    ),
    _SHORT + 2: (
        "Great service!",
        "Love it",
        "Amazing {product}!",
        "Perfect.",
        "Top notch.",
        "Super friendly staff.",
        "Fast and easy.",
        "Best {venue} in town!",
        "Spot on.",
        "Excellent as always.",
        "lovely {staff}, great {product}",
    ),
    _LETTER_OPEN: (
        "To whom it may concern,",
        "Dear Customer Service Team,",
        "Dear Sir or Madam,",
        "Dear Complaints Department,",
    ),
    _LETTER_OPEN + 1: ("To whom it may concern,", "Dear Customer Service Team,", "Hello,"),
    _LETTER_OPEN + 2: ("Dear team,", "Hello,", "To the whole team,"),
    _LETTER_CLOSE: (
        "I expect a full refund and a written apology.\nYours sincerely,\n"
        "A very disappointed customer",
        "I look forward to your prompt response.\nRegards",
        "If this is not resolved within 14 days I will take it further.\nKind regards",
        "Please treat this as a formal complaint.\nSincerely",
        "I have kept copies of all our correspondence.\nThank you",
    ),
    _LETTER_CLOSE + 1: (
        "I hope this feedback is useful.\nRegards",
        "I would appreciate a reply.\nKind regards",
    ),
    _LETTER_CLOSE + 2: (
        "Please pass my thanks on to everyone involved.\nKind regards",
        "Thank you again to the whole team.\nBest wishes",
    ),
    _HASHTAG: (
        "#fail",
        "#customerservice",
        "#neveragain",
        "#worstservice",
        "#complaint #{tag}",
        "#disappointed",
        "#fail #customerservice",
    ),
    _HASHTAG + 1: ("#meh", "#review", "#honestreview", "#{tag}"),
    _HASHTAG + 2: ("#happycustomer", "#recommend", "#loveit #{tag}", "#goodservice", "#thankyou"),
    _EMOJI: ("😡", "🤬", "👎", "😤😤", "🙄", "😡😡😡", "💀", "😞", "🤦"),
    _EMOJI + 1: ("🤷", "😐", "🤔", "😕"),
    _EMOJI + 2: ("😍", "👍", "🙌", "❤️", "⭐⭐⭐⭐⭐", "😊", "🔥🔥", "💯"),
}

_GLOBAL_FILLS: dict[str, tuple[str, ...]] = {
    "n_min": ("10", "15", "20", "25", "30", "40", "45", "50", "90", "over 60", "nearly 120"),
    "n_times": ("two", "three", "four", "five", "six", "seven", "3", "5", "10"),
    "n_days": ("5", "9", "10", "12", "14", "17", "21", "30", "45", "60"),
    "n_weeks": ("two", "three", "four", "six", "eight"),
    "n_years": ("2", "3", "5", "7", "10", "12", "15"),
    "money": ("$25", "$40", "$60", "$85", "$120", "$200", "$350", "€50", "£75"),
    "weekday": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
    "time_of_day": ("morning", "afternoon", "evening", "night"),
    "name": (
        "Sam", "Priya", "Tom", "Maria", "Jamal", "Lucy", "Chen", "Olga", "Dave", "Fatima",
        "Luis", "Hannah", "Kwame", "Sofia", "Ben", "Aisha", "Mark", "Yuki", "Ravi", "Emma",
    ),
}  # fmt: skip


@dataclass(frozen=True)
class _Industry:
    key: str
    suffixes: tuple[str, ...]
    venue: tuple[str, ...]
    staff: tuple[str, ...]
    contact: tuple[str, ...]
    product: tuple[str, ...]
    product_bad: tuple[str, ...]
    product_good: tuple[str, ...]
    event: tuple[str, ...]
    tag: tuple[str, ...]
    service_complaint: tuple[str, ...]
    product_complaint: tuple[str, ...]
    staff_praise: tuple[str, ...]
    product_praise: tuple[str, ...]
    neutral: tuple[str, ...]


_INDUSTRIES: tuple[_Industry, ...] = (
    _Industry(
        key="restaurants",
        suffixes=("Bistro", "Kitchen", "Grill", "Diner", "Trattoria", "Eatery"),
        venue=("restaurant", "place", "spot"),
        staff=("waiter", "waitress", "server", "host", "manager", "bartender"),
        contact=("the manager", "the front of house team", "their booking line"),
        product=(
            "pasta", "burger", "steak", "soup", "dessert", "pizza", "curry", "fish and chips",
            "salad", "brunch special",
        ),
        product_bad=(
            "was cold", "was undercooked", "was completely bland",
            "tasted like it had been microwaved", "was drowning in salt", "came out lukewarm",
            "was tiny for the price", "was burnt on one side",
        ),
        product_good=(
            "was delicious", "was perfectly cooked", "was full of flavour",
            "came out piping hot", "was generous and tasty", "tasted homemade",
        ),
        event=("our reservation", "the birthday booking", "our takeaway order", "the bill"),
        tag=("foodie", "restaurant", "dinner"),
        service_complaint=(
            "We sat for {n_min} minutes without being offered so much as a glass of water.",
            "They gave our table away even though we had a booking.",
            "The bill was wrong twice and the server got annoyed with us for pointing it out.",
        ),
        product_complaint=(
            "Found a hair in my food.",
            "The portions have shrunk but the prices certainly have not.",
            "The house red tasted like vinegar.",
        ),
        staff_praise=(
            "Our server recommended dishes and every one was spot on.",
            "They handled my allergy with real care.",
        ),
        product_praise=(
            "The desserts are worth the trip alone.",
            "Fresh ingredients, you can really taste the difference.",
        ),
        neutral=("We ordered starters and two mains.", "They do a lunch menu on weekdays."),
    ),
    _Industry(
        key="airlines",
        suffixes=("Airways", "Air", "Airlines", "Aviation", "Jet"),
        venue=("airline", "carrier"),
        staff=(
            "flight attendant", "gate agent", "check-in agent", "cabin crew member",
            "baggage desk agent",
        ),
        contact=("customer relations", "the call centre", "their baggage desk", "the help line"),
        product=("seat", "in-flight meal", "legroom", "inflight wifi", "lounge", "cabin"),
        product_bad=(
            "was a disgrace", "was filthy", "was nothing like advertised",
            "was worse than a budget carrier", "was broken", "was cramped and uncomfortable",
        ),
        product_good=(
            "was surprisingly comfortable", "was excellent", "was spotless",
            "was better than expected", "was great value",
        ),
        event=(
            "my rebooking", "the lost luggage claim", "my refund for the cancelled flight",
            "our connection", "the seat change",
        ),
        tag=("travel", "flying", "avgeek"),
        service_complaint=(
            "The flight was cancelled and nobody at the gate could tell us anything.",
            "They lost my luggage and the baggage desk just gave me a form and a shrug.",
            "We were stuck on the tarmac for {n_min} minutes with no updates.",
        ),
        product_complaint=(
            "The seats barely recline and the legroom is non-existent.",
            "Paid extra for wifi that never worked once.",
        ),
        staff_praise=(
            "The cabin crew were warm and attentive the whole flight.",
            "The gate agent rebooked us onto the next flight without any fuss.",
        ),
        product_praise=(
            "Landed twenty minutes early.", "The new planes are quiet and comfortable.",
        ),
        neutral=("It was a short domestic flight.", "We flew economy both ways."),
    ),
    _Industry(
        key="telecom",
        suffixes=("Telecom", "Mobile", "Networks", "Broadband", "Connect", "Wireless"),
        venue=("provider", "network", "company"),
        staff=("support agent", "technician", "sales rep", "store assistant", "engineer"),
        contact=("customer support", "the call centre", "their live chat", "the store"),
        product=(
            "broadband", "phone plan", "router", "signal", "mobile data", "fibre connection",
            "SIM card",
        ),
        product_bad=(
            "drops out every evening", "keeps cutting out", "is painfully slow",
            "stopped working after a week", "is nowhere near the advertised speed",
            "has been down for days",
        ),
        product_good=(
            "has been rock solid", "is really fast", "works perfectly", "never drops",
            "is exactly as advertised",
        ),
        event=(
            "my contract cancellation", "the engineer visit", "my number transfer",
            "the billing error", "my upgrade",
        ),
        tag=("broadband", "telecom", "wifi"),
        service_complaint=(
            "The engineer never turned up and nobody called to say why.",
            "They charged me for a month after I cancelled and support just said it was "
            "'in the system'.",
            "Live chat disconnected me {n_times} times.",
        ),
        product_complaint=(
            "No signal indoors at all, in the middle of a city.",
            "My bill went up by {money} with no warning.",
        ),
        staff_praise=(
            "The technician was on time, tidy and explained everything.",
            "The agent on live chat found me a cheaper plan.",
        ),
        product_praise=(
            "Speeds are consistently above what they promised.",
            "Switched last month and haven't had a single outage.",
        ),
        neutral=("I am on the 24 month contract.", "I mostly use it for streaming and work calls."),
    ),
    _Industry(
        key="banking",
        suffixes=("Bank", "Savings", "Credit Union", "Financial", "Trust"),
        venue=("bank", "branch"),
        staff=("cashier", "branch manager", "advisor", "teller", "fraud team agent"),
        contact=("the helpline", "the branch", "their secure messaging", "the fraud team"),
        product=(
            "mobile app", "current account", "savings rate", "credit card", "online banking",
            "debit card",
        ),
        product_bad=(
            "keeps crashing", "is full of hidden fees", "stopped working without warning",
            "is a nightmare to use", "is worse than every other bank's",
        ),
        product_good=(
            "is easy to use", "works flawlessly", "is genuinely good value",
            "is the best I have used", "has never let me down",
        ),
        event=(
            "my mortgage application", "the fraud claim", "my card replacement",
            "the account closure", "a disputed payment",
        ),
        tag=("banking", "fintech"),
        service_complaint=(
            "My account was frozen for {n_days} days and nobody would explain why.",
            "The branch sent me to the helpline and the helpline sent me back to the branch.",
            "They took {n_weeks} weeks to process a simple address change.",
        ),
        product_complaint=(
            "The interest rate on savings is laughable.",
            "Overdraft fees are extortionate.",
        ),
        staff_praise=(
            "The advisor took time to explain the mortgage options properly.",
            "The fraud team acted fast and refunded me the same day.",
        ),
        product_praise=(
            "The app makes budgeting actually easy.",
            "No fees on foreign transactions, which is great.",
        ),
        neutral=("I opened the account online.", "I mainly use the app."),
    ),
    _Industry(
        key="insurance",
        suffixes=("Insurance", "Assurance", "Mutual", "Cover", "Underwriters"),
        venue=("insurer", "company"),
        staff=("claims handler", "agent", "assessor", "broker", "adjuster"),
        contact=("the claims line", "their claims team", "the broker", "customer services"),
        product=(
            "policy", "home cover", "car insurance", "premium", "renewal quote", "travel cover",
        ),
        product_bad=(
            "doubled at renewal for no reason", "turned out to cover almost nothing",
            "is full of exclusions nobody mentions", "is far too expensive",
            "was nothing like what I was sold",
        ),
        product_good=(
            "is very reasonably priced", "covered everything I needed",
            "is clear and easy to understand", "is great value",
        ),
        event=(
            "my claim", "the renewal", "the windscreen claim", "the water damage claim",
            "my cancellation",
        ),
        tag=("insurance",),
        service_complaint=(
            "My claim has been 'under review' for {n_weeks} weeks.",
            "Every time I call, I get a different claims handler who knows nothing about my "
            "case.",
            "They sent an assessor who spent five minutes looking and then denied everything.",
        ),
        product_complaint=(
            "The excess is so high that the policy is basically useless.",
            "The renewal price went up by {money} with no claims.",
        ),
        staff_praise=(
            "The claims handler kept me updated every step of the way.",
            "The assessor was fair, thorough and friendly.",
        ),
        product_praise=(
            "The claim paid out within a week.",
            "Cheapest quote I found and the cover is solid.",
        ),
        neutral=(
            "I have had the policy for {n_years} years.", "Bought it through a comparison site.",
        ),
    ),
    _Industry(
        key="hotels",
        suffixes=("Hotel", "Inn", "Suites", "Resort", "Lodge"),
        venue=("hotel", "place"),
        staff=("receptionist", "concierge", "housekeeper", "night manager", "porter"),
        contact=("reception", "the front desk", "the duty manager", "their reservations team"),
        product=("room", "bed", "breakfast", "bathroom", "pool", "spa"),
        product_bad=(
            "was filthy", "smelled of damp", "was nothing like the photos", "was tiny and noisy",
            "was in desperate need of a refurb", "was freezing cold",
        ),
        product_good=(
            "was spotless", "was beautiful", "was incredibly comfortable",
            "was better than the photos", "was a real highlight",
        ),
        event=(
            "our booking", "the room change", "the late checkout",
            "the refund for the extra night", "our anniversary stay",
        ),
        tag=("travel", "hotel", "staycation"),
        service_complaint=(
            "Reception lost our booking and then acted like it was our fault.",
            "We asked for towels {n_times} times and they never came.",
            "Check-in took {n_min} minutes because only one person was working.",
        ),
        product_complaint=(
            "The walls are paper thin, we heard everything next door.",
            "The air conditioning rattled all night.",
        ),
        staff_praise=(
            "The concierge booked us a great table and gave brilliant tips.",
            "Housekeeping were lovely and left a little note for our anniversary.",
        ),
        product_praise=("Amazing view from the room.", "The breakfast buffet was huge and fresh."),
        neutral=(
            "We stayed three nights in a double room.",
            "It is a ten minute walk from the station.",
        ),
    ),
    _Industry(
        key="online_retail",
        suffixes=("Shop", "Store", "Market", "Outlet", "Direct", "Goods"),
        venue=("shop", "online store", "retailer"),
        staff=("customer service rep", "returns team agent", "chat agent", "store manager"),
        contact=("customer service", "their returns team", "the live chat", "their email support"),
        product=(
            "jacket", "blender", "phone case", "pair of trainers", "sofa", "laptop",
            "pair of headphones",
            "dress", "desk lamp",
        ),
        product_bad=(
            "arrived broken", "fell apart after two weeks", "was the wrong size",
            "looked nothing like the photos", "stopped working after a few days",
            "was clearly used",
        ),
        product_good=(
            "arrived quickly and works perfectly", "is great quality",
            "looks even better in person", "fits perfectly", "was well packaged and great value",
        ),
        event=(
            "my return", "the refund", "my replacement order", "the exchange", "the missing order",
        ),
        tag=("shopping", "onlineshopping"),
        service_complaint=(
            "They refused my return because the box had been opened. Of course it was opened, "
            "how else would I know it was broken?",
            "Live chat just pasted the same scripted answer {n_times} times.",
            "My refund has been 'processing' for {n_days} days.",
        ),
        product_complaint=(
            "Cheap materials, the stitching came loose on day one.",
            "The colour is completely different from the website.",
        ),
        staff_praise=(
            "The returns team sorted out an exchange in one email.",
            "The chat agent sent a replacement before I even returned the faulty one.",
        ),
        product_praise=(
            "Exactly as described and arrived the next day.",
            "Great quality for the price.",
        ),
        neutral=("Ordered on a sale weekend.", "I usually buy from them a couple of times a year."),
    ),
    _Industry(
        key="delivery",
        suffixes=("Express", "Couriers", "Logistics", "Delivery", "Parcels", "Freight"),
        venue=("courier", "delivery company"),
        staff=("driver", "courier", "depot manager", "dispatcher", "support agent"),
        contact=("the depot", "their support line", "customer service", "the tracking chat"),
        product=("parcel", "package", "delivery", "food order", "furniture delivery"),
        product_bad=(
            "arrived crushed", "was left in the rain", "never turned up",
            "arrived three days late", "was delivered to the wrong address",
            "was thrown over the fence",
        ),
        product_good=(
            "arrived early", "arrived in perfect condition", "turned up exactly on time",
            "was handled with care",
        ),
        event=(
            "my missing parcel", "the redelivery", "the lost package claim", "the delivery slot",
            "the compensation claim",
        ),
        tag=("delivery", "parcel"),
        service_complaint=(
            "The tracking said 'delivered' but nothing arrived and support just closed the "
            "ticket.",
            "The driver marked it as 'nobody home' while I was standing at the door.",
            "Spent {n_min} minutes on the phone to be told to wait another {n_days} days.",
        ),
        product_complaint=(
            "The box looked like it had been kicked down the street.",
            "Half the items were missing from the order.",
        ),
        staff_praise=(
            "The driver carried it upstairs without being asked.",
            "Lovely driver, always waves and leaves parcels somewhere safe.",
        ),
        product_praise=(
            "Next day delivery that actually arrives the next day.",
            "Tracking was accurate to the minute.",
        ),
        neutral=("The parcel was a birthday present.", "I work from home so I am usually in."),
    ),
    _Industry(
        key="utilities",
        suffixes=("Energy", "Power", "Water", "Gas", "Utilities", "Electric"),
        venue=("supplier", "energy company", "provider"),
        staff=("customer service agent", "meter reader", "engineer", "billing advisor"),
        contact=(
            "the billing team", "their customer service line", "the emergency line",
            "their online chat",
        ),
        product=("bill", "smart meter", "tariff", "direct debit", "water supply", "heating"),
        product_bad=(
            "doubled overnight", "has been wrong for months", "stopped sending readings",
            "makes no sense at all", "has been cut off twice this month",
        ),
        product_good=(
            "is clear and fair", "has been accurate", "saves me money every month",
            "works perfectly", "is great value",
        ),
        event=(
            "my meter reading", "the overcharge", "the switch", "my account closure",
            "the refund of my credit",
        ),
        tag=("energy", "bills"),
        service_complaint=(
            "I have sent meter readings {n_times} times and they still estimate my bill.",
            "They cut off our supply by mistake and took {n_days} days to apologise.",
            "Their billing team could not explain a single line of my bill.",
        ),
        product_complaint=(
            "The direct debit went up by {money} a month with no explanation.",
            "Constant power cuts in our street and the company shrugs.",
        ),
        staff_praise=(
            "The engineer fixed the meter in twenty minutes and was very polite.",
            "The billing advisor went through everything line by line and found me a refund.",
        ),
        product_praise=(
            "The app shows usage by the hour, really handy.",
            "Cheaper than my old supplier and no surprises.",
        ),
        neutral=("We live in a three bedroom house.", "I switched through a comparison website."),
    ),
    _Industry(
        key="car_repair",
        suffixes=("Motors", "Garage", "Auto Repair", "Autocare", "Tyres", "Service Centre"),
        venue=("garage", "workshop"),
        staff=("mechanic", "service advisor", "receptionist", "technician", "owner"),
        contact=("the service desk", "the garage", "the front office", "the owner"),
        product=("repair", "brake job", "MOT", "oil change", "tyre fitting", "service"),
        product_bad=(
            "did not fix the problem", "was done badly", "cost twice the quote",
            "had to be redone elsewhere", "left a new rattle behind",
        ),
        product_good=(
            "was done properly", "fixed the problem first time", "was cheaper than the quote",
            "was quick and thorough",
        ),
        event=("my car", "the warranty claim", "the quote", "the courtesy car", "the booking"),
        tag=("cars", "mechanic"),
        service_complaint=(
            "They kept my car for {n_days} days without a single update.",
            "The mechanic was patronising and clearly assumed I knew nothing about cars.",
            "Nobody called when the car was ready, I had to chase them.",
        ),
        product_complaint=(
            "They charged {money} for parts I am not convinced they even replaced.",
            "Two days after the repair the warning light came back on.",
        ),
        staff_praise=(
            "The mechanic showed me the worn parts and explained what needed doing.",
            "Honest garage, they told me what did NOT need doing.",
        ),
        product_praise=("Car drives like new.", "Fair prices and proper work."),
        neutral=(
            "It is a 2014 hatchback with a lot of miles on it.",
            "I booked online for a Monday morning.",
        ),
    ),
    _Industry(
        key="clinics",
        suffixes=("Clinic", "Medical", "Health", "Dental", "Practice", "Care"),
        venue=("clinic", "practice", "surgery"),
        staff=("receptionist", "nurse", "doctor", "dentist", "practice manager"),
        contact=(
            "reception", "the appointment line", "the practice manager", "their patient portal",
        ),
        product=(
            "treatment", "check-up", "consultation", "prescription", "filling", "blood test",
        ),
        product_bad=(
            "was rushed and painful", "did not help at all", "was wrong",
            "cost far more than quoted", "took weeks to come through",
        ),
        product_good=(
            "was painless", "was thorough", "really helped", "was explained clearly",
            "came back quickly",
        ),
        event=(
            "my appointment", "the referral", "my test results", "the prescription renewal",
            "the billing mix-up",
        ),
        tag=("health", "dentist"),
        service_complaint=(
            "The receptionist was dismissive and would not even look up from the screen.",
            "I waited {n_min} minutes past my appointment time without an apology.",
            "They cancelled my appointment the night before by text, {n_times} times.",
        ),
        product_complaint=(
            "The filling fell out within a month.",
            "Charged {money} for a ten minute consultation.",
        ),
        staff_praise=(
            "The nurse was so gentle and put me at ease.",
            "The dentist explained every step and checked I was okay throughout.",
        ),
        product_praise=(
            "The treatment worked and I feel so much better.",
            "Results came back in two days.",
        ),
        neutral=("I was referred by my GP.", "The clinic is on the second floor."),
    ),
    _Industry(
        key="software",
        suffixes=("Software", "Cloud", "Apps", "Labs", "Systems", "HQ"),
        venue=("app", "service", "platform"),
        staff=("support engineer", "account manager", "success manager", "support agent"),
        contact=("their support", "the help desk", "their ticket system", "the account manager"),
        product=(
            "app", "subscription", "latest update", "dashboard", "sync feature", "premium plan",
        ),
        product_bad=(
            "keeps crashing", "is painfully slow", "broke half the features I use",
            "logs me out every day", "lost my data",
        ),
        product_good=(
            "just works", "is fast and intuitive", "has saved me hours",
            "is genuinely well designed", "keeps getting better",
        ),
        event=(
            "my cancellation", "the billing dispute", "my data export", "the account migration",
            "my refund request",
        ),
        tag=("saas", "software", "tech"),
        service_complaint=(
            "Support tickets sit unanswered for {n_days} days.",
            "They made it almost impossible to cancel the subscription.",
            "Support replied with a link to an FAQ that had nothing to do with my question.",
        ),
        product_complaint=(
            "The latest update removed the one feature I actually used.",
            "They raised the price by {money} a year and added nothing.",
        ),
        staff_praise=(
            "The support engineer jumped on a call and fixed it in ten minutes.",
            "Our account manager is responsive and genuinely helpful.",
        ),
        product_praise=(
            "Clean interface and it syncs perfectly across devices.",
            "Worth every cent of the subscription.",
        ),
        neutral=("We use it for a team of about twenty people.", "I am on the annual plan."),
    ),
)  # fmt: skip

INDUSTRIES: tuple[str, ...] = tuple(industry.key for industry in _INDUSTRIES)

_ADJECTIVES = (
    "Golden", "Blue", "Silver", "Bright", "Swift", "Royal", "Green", "Northern", "Southern",
    "Eastern", "Western", "Urban", "Grand", "Happy", "Little", "Prime", "Red", "Quiet", "Bold",
    "Clear", "Crystal", "Evergreen", "First", "Fresh", "Friendly", "Global", "Azure", "Honest",
    "Lucky", "Modern", "Noble", "Old", "Pacific", "Pioneer", "Rapid", "Rustic", "Smart", "Solid",
    "Misty", "Sunny", "True", "Trusty", "United", "Vital", "Wild", "Young", "Amber", "Silent",
    "Copper", "Coral", "Ivory", "Jade", "Ruby", "Scarlet", "Velvet", "Iron", "Merry", "Brave",
    "Gentle", "Sterling", "Atlas", "Apex", "Nova", "Zen",
)  # fmt: skip
_NOUNS = (
    "Harbor", "Maple", "Pine", "River", "Lake", "Ridge", "Valley", "Meadow", "Bridge", "Crown",
    "Star", "Sun", "Moon", "Falcon", "Eagle", "Fox", "Bear", "Wolf", "Lion", "Owl", "Oak",
    "Willow", "Cedar", "Birch", "Rock", "Stone", "Hill", "Field", "Garden", "Grove", "Bay",
    "Coast", "Island", "Anchor", "Compass", "Lantern", "Beacon", "Arrow", "Horizon", "Orchard",
    "Forge", "Mill", "Spring", "Brook", "Canyon", "Summit", "Peak", "Gate", "Tower", "Castle",
    "Market", "Square", "Corner", "Street", "Lane", "Park", "Point", "Cove", "Haven", "Port",
    "Key", "Wave", "Sky", "Thistle",
)  # fmt: skip
_NAME_STEP = 7919  # prime, so consecutive companies get scattered names

# Common misspellings applied to sloppy reviews, in three groups so sloppy texts differ.
_TYPOS: tuple[tuple[str, str], ...] = (
    ("definitely", "definately"), (" received", " recieved"), (" the ", " teh "),
    (" you ", " u "), (" your ", " ur "), ("because", "becuase"), ("really", "realy"),
    ("restaurant", "resturant"), ("until", "untill"), ("minutes", "mins"),
    ("disappointed", "dissapointed"), ("experience", "experiance"), ("immediately", "immediatly"),
    (" their ", " there "), ("I am ", "im "), ("don't", "dont"), ("won't", "wont"),
    ("can't", "cant"), ("it's", "its"), ("appointment", "appointmant"), ("customer", "costumer"),
    ("which", "wich"), ("would", "woud"), ("receptionist", "recepcionist"), ("apology", "appology"),
    ("absolutely", "absolutly"), ("probably", "probly"), (" and ", " n "), ("though", "tho"),
)  # fmt: skip

# --- distributions -----------------------------------------------------------------------------
_CHANNEL_SHARE = dict(review_site=0.45, facebook=0.20, twitter=0.15, instagram=0.08, other=0.12)
_SOCIAL = np.array([channel in ("facebook", "twitter", "instagram") for channel in CHANNELS])


def _per_channel(**values: float) -> np.ndarray:
    return np.array([values[channel] for channel in CHANNELS], dtype=np.float64)


_P_SHORT = _per_channel(review_site=0.10, facebook=0.15, twitter=0.30, instagram=0.35, other=0.08)
_P_LETTER = _per_channel(review_site=0.03, facebook=0.02, twitter=0.0, instagram=0.0, other=0.12)
_LETTER_BY_TONE = np.array([2.0, 0.6, 0.3])  # complaint letters are mostly complaints
# Sentences in an ordinary review: log-normal around a median, capped.
_SENT_MEDIAN = _per_channel(review_site=4.0, facebook=2.5, twitter=1.3, instagram=1.5, other=3.5)
_SENT_SIGMA = _per_channel(review_site=0.75, facebook=0.7, twitter=0.5, instagram=0.5, other=0.8)
_SENT_MAX = _per_channel(review_site=20, facebook=12, twitter=3, instagram=4, other=20)
_P_OPENER = _per_channel(review_site=0.6, facebook=0.5, twitter=0.25, instagram=0.25, other=0.5)
_P_CLOSER = _per_channel(review_site=0.55, facebook=0.45, twitter=0.2, instagram=0.2, other=0.5)
_P_HANDLE = _per_channel(review_site=0.0, facebook=0.1, twitter=0.7, instagram=0.2, other=0.0)
_P_HASHTAG = _per_channel(review_site=0.0, facebook=0.05, twitter=0.35, instagram=0.6, other=0.0)
_P_EMOJI = _per_channel(review_site=0.05, facebook=0.25, twitter=0.3, instagram=0.6, other=0.05)
_P_LOWER = _per_channel(review_site=0.02, facebook=0.08, twitter=0.2, instagram=0.2, other=0.03)
_P_RATED = _per_channel(review_site=1.0, facebook=0.4, twitter=0.0, instagram=0.0, other=0.6)
# Engagement of social posts: likes log-normal, shares a binomial thinning of them.
_LIKES_MU = _per_channel(review_site=0, facebook=1.0, twitter=0.7, instagram=2.0, other=0)
_LIKES_SIGMA = _per_channel(review_site=1, facebook=1.4, twitter=1.6, instagram=1.3, other=1)
_SHARE_RATE = _per_channel(review_site=0, facebook=0.12, twitter=0.25, instagram=0.03, other=0)
# Stars on review sites are J-shaped; each company tilts them by its own quality.
_STAR_BASE = np.array([0.20, 0.08, 0.09, 0.17, 0.46])
# Sentence mix per tone (negative, mixed, positive): complaint, praise, the rest neutral.
_P_COMPLAINT = np.array([0.72, 0.38, 0.06])
_P_PRAISE = np.array([0.06, 0.32, 0.70])
# Reviews posted per hour of the day (UTC), and per weekday (Monday first).
_HOUR_WEIGHT = np.array(
    [2, 1, 1, 1, 1, 1, 2, 3, 4, 5, 5, 6, 7, 6, 5, 5, 5, 6, 7, 8, 9, 9, 7, 4], dtype=np.float64
)
_WEEKDAY_WEIGHT = np.array([1.05, 1.0, 1.0, 1.0, 0.95, 1.1, 1.15])
_GROWTH = 0.3  # the last day sees 30% more reviews than the first


# --- phrase pool -------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Pool:
    """Every phrase of every (industry, category), flattened, in four variants.

    Variant ``v`` of phrase ``k`` sits at ``k + v * size``: 0 as written, 1 followed by a
    paragraph break, 2 in capitals, 3 in capitals followed by a paragraph break.
    """

    texts: pa.Array
    size: int
    start: np.ndarray  # (industry, category) -> first index
    count: np.ndarray  # (industry, category) -> number of phrases


def _fields(template: str) -> list[str]:
    return [name for _, name, _, _ in string.Formatter().parse(template) if name]


def _expand(template: str, fills: dict[str, tuple[str, ...]], rnd: random.Random) -> list[str]:
    """Up to eight distinct fillings of ``template``'s placeholders."""
    names = list(dict.fromkeys(_fields(template)))  # in order: a set's order varies by process
    if not names:
        return [template]
    combinations = 1
    for name in names:
        combinations *= len(fills[name])
    wanted = min(8, combinations)
    out: dict[str, None] = {}
    for _ in range(wanted * 4):
        out[template.format(**{name: rnd.choice(fills[name]) for name in names})] = None
        if len(out) == wanted:
            break
    return list(out)


@cache
def _pool() -> _Pool:
    rnd = random.Random(20261121)  # fixed: the phrase pool is the same for every seed
    texts: list[str] = []
    start = np.zeros((len(_INDUSTRIES), _N_CATEGORIES), dtype=np.int64)
    count = np.zeros_like(start)
    for i, industry in enumerate(_INDUSTRIES):
        fills = dict(_GLOBAL_FILLS)
        for name in ("venue", "staff", "contact", "product", "product_bad", "product_good"):
            fills[name] = getattr(industry, name)
        fills["event"] = industry.event
        fills["tag"] = industry.tag
        specific = {
            _SERVICE_COMPLAINT: industry.service_complaint,
            _PRODUCT_COMPLAINT: industry.product_complaint,
            _STAFF_PRAISE: industry.staff_praise,
            _PRODUCT_PRAISE: industry.product_praise,
            _NEUTRAL: industry.neutral,
        }
        for category in range(_N_CATEGORIES):
            # Fillings of one template are spread a template apart, so neighbouring indices,
            # which one review uses for its sentences of one category, come from different
            # templates.
            templates = list(_GENERIC[category] + specific.get(category, ()))
            rnd.shuffle(templates)
            seen: set[str] = set()
            filled = []
            for template in templates:
                phrases = []
                for phrase in _expand(template, fills, rnd):
                    if category < _SHORT:  # sentences start with a capital; short posts may not
                        phrase = phrase[0].upper() + phrase[1:]
                    if phrase not in seen:
                        seen.add(phrase)
                        phrases.append(phrase)
                filled.append(phrases)
            chosen = [
                phrases[r]
                for r in range(max(map(len, filled)))
                for phrases in filled
                if r < len(phrases)
            ]
            start[i, category] = len(texts)
            count[i, category] = len(chosen)
            texts.extend(chosen)
    variants = (
        texts
        + [text + "\n\n" for text in texts]
        + [text.upper() for text in texts]
        + [text.upper() + "\n\n" for text in texts]
    )
    return _Pool(pa.array(variants, pa.string()), len(texts), start, count)


# --- companies ---------------------------------------------------------------------------------
def company_names(count: int) -> list[str]:
    """``count`` distinct fictional company names, the same for every call and every seed.

    Company ``i`` is in industry ``INDUSTRIES[i % 12]`` and named adjective + noun + a suffix of
    that industry; past 16,384 names per industry a number is appended. Names never depend on
    ``count``: the first ten of 5,000 are the ten of 10.

    >>> company_names(3)
    ['Golden Harbor Bistro', 'Quiet Fox Airways', 'Rapid Bay Telecom']
    """
    if count < 0:
        raise ConfigError(f"company count must be 0 or more, got {count}")
    names = []
    per_word = len(_ADJECTIVES) * len(_NOUNS)
    for i in range(count):
        industry = _INDUSTRIES[i % len(_INDUSTRIES)]
        rank, j = divmod(i // len(_INDUSTRIES), per_word * len(industry.suffixes))
        k = (j * _NAME_STEP + (i % len(_INDUSTRIES)) * 977) % (per_word * len(industry.suffixes))
        suffix, rest = divmod(k, per_word)
        noun, adjective = divmod(rest, len(_ADJECTIVES))
        name = f"{_ADJECTIVES[adjective]} {_NOUNS[noun]} {industry.suffixes[suffix]}"
        names.append(name if rank == 0 else f"{name} {rank + 1}")
    return names


def company_industries(count: int) -> list[str]:
    """The industry of each of the first ``count`` companies (see :func:`company_names`)."""
    return [INDUSTRIES[i % len(INDUSTRIES)] for i in range(count)]


# --- generation --------------------------------------------------------------------------------
def _start_us(start: datetime | date | str) -> int:
    if isinstance(start, str):
        text = start.strip()
        if text[-1:] in ("Z", "z"):
            text = text[:-1] + "+00:00"
        try:
            start = datetime.fromisoformat(text)
        except ValueError:
            raise ConfigError(
                f"start {start!r} is not an ISO 8601 date such as 2025-11-21"
            ) from None
    if not isinstance(start, datetime):
        start = datetime(start.year, start.month, start.day)
    if start.tzinfo is None:
        start = start.replace(tzinfo=timezone.utc)
    delta = start - datetime(1970, 1, 1, tzinfo=timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _cdf(weights: np.ndarray) -> np.ndarray:
    cdf = np.cumsum(weights, axis=-1)
    return cdf / cdf[..., -1:]


def _draw(cdf: np.ndarray, u: np.ndarray) -> np.ndarray:
    return np.minimum(np.searchsorted(cdf, u, side="right"), len(cdf) - 1)


class _Plan:
    """Everything fixed for one call: the companies, their traits, the calendar."""

    def __init__(self, names: list[str], days: int, start_us: int, seed: int) -> None:
        self.seed = seed
        self.pool = _pool()
        count = len(names)
        self.names = pa.array(names, pa.string())
        self.handles = pa.array(
            ["@" + "".join(ch for ch in name if ch.isalnum()) for name in names], pa.string()
        )
        self.industry = np.arange(count) % len(_INDUSTRIES)
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1,)))
        # Review volume is skewed: a few companies get most of the reviews.
        self.company_cdf = _cdf(rng.lognormal(0.0, 1.3, count))
        quality = rng.normal(0.0, 0.5, count)
        self.star_cdf = _cdf(_STAR_BASE * np.exp(np.outer(quality, np.arange(-2, 3))))
        self.service_share = rng.beta(2.0, 2.0, count)  # of complaints, the share about service
        self.staff_share = rng.beta(2.0, 2.0, count)  # of praise, the share about staff
        day = np.arange(days)
        weekday = (start_us // _US_PER_DAY + 3 + day) % 7  # 1970-01-01 was a Thursday
        self.day_cdf = _cdf((1.0 + _GROWTH * day / days) * _WEEKDAY_WEIGHT[weekday])
        self.hour_cdf = _cdf(_HOUR_WEIGHT)
        self.channel_names = pa.array(CHANNELS, pa.string())
        self.channel_cdf = _cdf(np.array([_CHANNEL_SHARE[channel] for channel in CHANNELS]))
        self.start_us = start_us
        self.prefix = f"syn-{seed}-"
        # One array to take every piece of text from: the phrase pool, then the companies'
        # handles for tweets, then their salutations for complaint letters.
        self.handle_at = len(self.pool.texts)
        self.salutation_at = self.handle_at + count
        self.texts = pa.concat_arrays(
            [
                self.pool.texts,
                self.handles,
                pa.array([f"Dear {name},\n\n" for name in names], pa.string()),
            ]
        )

    def block(self, b: int) -> pa.RecordBatch:
        """Rows ``b * BLOCK_ROWS`` to ``(b + 1) * BLOCK_ROWS``, from block ``b``'s own stream."""
        m, s, pool = BLOCK_ROWS, _MAX_BODY, self.pool
        rng = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(0, b)))
        company = _draw(self.company_cdf, rng.random(m))
        industry = self.industry[company]
        channel = _draw(self.channel_cdf, rng.random(m))
        star_u = rng.random(m)
        star = 1 + (star_u[:, None] >= self.star_cdf[company, :4]).sum(axis=1)
        tone = np.where(star <= 2, 0, np.where(star == 3, 1, 2))

        form_u = rng.random(m)
        short = form_u < _P_SHORT[channel]
        letter = ~short & (form_u < _P_SHORT[channel] + _P_LETTER[channel] * _LETTER_BY_TONE[tone])
        sentences = np.rint(
            np.exp(np.log(_SENT_MEDIAN[channel]) + _SENT_SIGMA[channel] * rng.standard_normal(m))
        )
        sentences = np.clip(sentences, 1, _SENT_MAX[channel]).astype(np.int64)
        sentences = np.where(letter, rng.integers(10, s + 1, m), sentences)
        sentences[short] = 0

        # Body sentences, flat: a category each from the tone and the company's leanings, then
        # a phrase of that category, the next one along for each slot (see _pool), so a long
        # review does not repeat itself.
        total = int(sentences.sum())
        row = np.repeat(np.arange(m), sentences)
        slot = np.arange(total) - np.repeat(np.cumsum(sentences) - sentences, sentences)
        u, v = rng.random(total), rng.random(total)
        tone_b, company_b = tone[row], company[row]
        complaint = u < _P_COMPLAINT[tone_b]
        praise = ~complaint & (u < (_P_COMPLAINT + _P_PRAISE)[tone_b])
        category = np.where(
            complaint,
            np.where(v < self.service_share[company_b], 0, 1),
            np.where(praise, np.where(v < self.staff_share[company_b], 2, 3), 4),
        )
        ind = industry[row]
        offset = rng.integers(0, 1 << 30, m)[row]
        body = pool.start[ind, category] + (offset + slot) % pool.count[ind, category]
        paragraph_length = rng.integers(3, 6, m)[row]
        paragraph = letter[row] & (
            ((slot + 1) % paragraph_length == 0) | (slot == sentences[row] - 1)
        )
        shout = (tone_b == 0) & (category < 2) & (rng.random(total) < 0.04)
        body += pool.size * (paragraph + 2 * shout)

        def one(base: np.ndarray, variant: np.ndarray | int = 0) -> np.ndarray:
            phrase = (
                pool.start[industry, base]
                + rng.integers(0, 1 << 30, m) % pool.count[industry, base]
            )
            return phrase + pool.size * variant

        normal = ~short & ~letter
        dear = letter & (rng.random(m) < 0.5)
        # Pieces before the body and after it: (phrase index, included), in text order.
        before = [
            (self.handle_at + company, rng.random(m) < _P_HANDLE[channel]),
            (self.salutation_at + company, dear),
            (
                one(np.where(letter, _LETTER_OPEN, _OPENER) + tone, letter.astype(np.int64)),
                (letter & ~dear) | (normal & (rng.random(m) < _P_OPENER[channel])),
            ),
            (one(_SHORT + tone), short),
        ]
        after = [
            (
                one(
                    np.where(letter, _LETTER_CLOSE, _CLOSER) + tone,
                    2 * ((tone == 0) & ~letter & (rng.random(m) < 0.15)),
                ),
                letter | (normal & (rng.random(m) < _P_CLOSER[channel])),
            ),
            (one(_HASHTAG + tone), rng.random(m) < _P_HASHTAG[channel]),
            (one(_EMOJI + tone), rng.random(m) < _P_EMOJI[channel]),
        ]
        # Place every piece at its position in one row-major list, then join each row's pieces.
        before_in = np.stack([included for _, included in before], axis=1)
        after_in = np.stack([included for _, included in after], axis=1)
        n_before = before_in.sum(axis=1)
        pieces = n_before + sentences + after_in.sum(axis=1)
        offsets = np.zeros(m + 1, dtype=np.int64)
        np.cumsum(pieces, out=offsets[1:])
        flat = np.empty(offsets[-1], dtype=np.int64)
        position = offsets[:-1, None] + np.cumsum(before_in, axis=1) - 1
        flat[position[before_in]] = np.stack([index for index, _ in before], axis=1)[before_in]
        flat[offsets[:-1][row] + n_before[row] + slot] = body
        position = (offsets[:-1] + n_before + sentences)[:, None] + np.cumsum(after_in, axis=1) - 1
        flat[position[after_in]] = np.stack([index for index, _ in after], axis=1)[after_in]
        lists = pa.ListArray.from_arrays(
            pa.array(offsets.astype(np.int32)), self.texts.take(pa.array(flat))
        )
        text = pc.binary_join(lists, " ")
        company_name = self.names.take(pa.array(company))

        # Touch-ups on a few rows each, in order: paragraphs, typos, then case.
        text = _touch(text, letter, lambda t: pc.replace_substring(t, "\n\n ", "\n\n"))
        sloppy = rng.random(m) < 0.10
        group = rng.integers(0, 3, m)
        for g in range(3):
            text = _touch(text, sloppy & (group == g), lambda t, g=g: _misspell(t, _TYPOS[g::3]))
        lower = rng.random(m) < _P_LOWER[channel]
        text = _touch(text, lower, lambda t: pc.replace_substring(pc.utf8_lower(t), ".", ""))
        caps = ~lower & (rng.random(m) < np.where(tone == 0, 0.05, 0.004))
        text = _touch(text, caps, lambda t: pc.replace_substring(pc.utf8_upper(t), ".", "!!"))
        exclaim = ~lower & ~caps & (tone == 0) & (rng.random(m) < 0.15)
        text = _touch(text, exclaim, lambda t: pc.replace_substring(t, ". ", "! "))

        # Ratings follow the tone, not mechanically, and are missing on most social posts.
        jitter = _draw(np.array([0.06, 0.94, 1.0]), rng.random(m)) - 1
        rating = np.clip(star + jitter, 1, 5).astype(np.int8)
        rated = rng.random(m) < _P_RATED[channel]

        social = _SOCIAL[channel]
        likes = np.floor(
            np.exp(_LIKES_MU[channel] + _LIKES_SIGMA[channel] * rng.standard_normal(m)) - 0.5
        )
        viral = rng.random(m) < 0.003
        likes = np.where(viral, likes * rng.lognormal(3.0, 1.0, m), likes)
        likes = np.clip(likes, 0, 10_000_000).astype(np.int64)
        share_rate = _SHARE_RATE[channel] * np.where(tone == 0, 1.5, 1.0)  # anger spreads
        shares = rng.binomial(likes, share_rate).astype(np.int64)

        day = _draw(self.day_cdf, rng.random(m))
        hour = _draw(self.hour_cdf, rng.random(m))
        created = (
            self.start_us
            + day * _US_PER_DAY
            + hour * _US_PER_HOUR
            + rng.integers(0, _US_PER_HOUR, m)
        )

        number = pa.array(np.arange(b * m, (b + 1) * m, dtype=np.int64))
        review_id = pc.binary_join_element_wise(
            self.prefix, pc.utf8_lpad(pc.cast(number, pa.string()), 10, "0"), ""
        )
        return pa.RecordBatch.from_arrays(
            [
                review_id,
                company_name,
                text,
                pa.array(created, pa.timestamp("us", tz="UTC")),
                pa.array(rating, pa.int8(), mask=~rated),
                self.channel_names.take(pa.array(channel)),
                pa.array(shares, pa.int64(), mask=~social),
                pa.array(likes, pa.int64(), mask=~social),
            ],
            schema=REVIEW_SCHEMA,
        )


def _touch(text: pa.Array, mask: np.ndarray, change: Callable[[pa.Array], pa.Array]) -> pa.Array:
    """``text`` with ``change`` applied to the rows where ``mask`` is true."""
    if not mask.any():
        return text
    flags = pa.array(mask)
    return pc.replace_with_mask(text, flags, change(text.filter(flags)))


def _misspell(text: pa.Array, typos: Sequence[tuple[str, str]]) -> pa.Array:
    for right, wrong in typos:  # once per text: people slip, they do not misspell every time
        text = pc.replace_substring(text, right, wrong, max_replacements=1)
    return text


def _check_count(value: int, name: str, least: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
        raise ConfigError(f"{name} must be a whole number of at least {least}, got {value!r}")


def generate_reviews(
    n: int,
    companies: int | Sequence[str] = 1_000,
    days: int = 365,
    start: datetime | date | str = DEFAULT_START,
    seed: int = 0,
    batch_rows: int = 50_000,
) -> Iterator[pa.RecordBatch]:
    """``n`` synthetic, unlabeled reviews in batches of ``batch_rows`` (the last may be smaller).

    Scale tests only, never training or evaluation (see the module docstring).

    Args:
        n: rows in all.
        companies: how many companies (named by :func:`company_names`), or their names; the
            company at position ``i`` writes in the vocabulary of ``INDUSTRIES[i % 12]``.
        days: ``created_at`` falls in ``[start, start + days days)``.
        start: first moment, a datetime, date or ISO 8601 string; naive values are UTC.
        seed: the same seed gives the same rows, whatever ``batch_rows``.
        batch_rows: rows per yielded batch; memory is about one batch plus one block. A batch
            holds at most 2 GiB of text (Arrow ``string``), so keep it to a few million rows.

    Raises:
        ConfigError: a count below its minimum, no companies, or an unreadable ``start``.
    """
    _check_count(n, "n", 0)
    _check_count(days, "days", 1)
    _check_count(batch_rows, "batch_rows", 1)
    _check_count(seed, "seed", 0)
    if isinstance(companies, (int, np.integer)) and not isinstance(companies, bool):
        _check_count(companies, "companies", 1)
        names = company_names(int(companies))
    elif isinstance(companies, Sequence) and not isinstance(companies, (str, bytes)):
        names = [str(name) for name in companies]
        if not names or any(not name.strip() for name in names):
            raise ConfigError("companies must be a count or a list of non-empty names")
    else:
        raise ConfigError(f"companies must be a count or a list of names, got {companies!r}")
    plan = _Plan(names, int(days), _start_us(start), int(seed))
    return _batches(plan, int(n), int(batch_rows))


def _batches(plan: _Plan, n: int, batch_rows: int) -> Iterator[pa.RecordBatch]:
    pending: list[pa.RecordBatch] = []
    pending_rows = 0
    for b in range(-(-n // BLOCK_ROWS)):
        block = plan.block(b)
        rows = min(BLOCK_ROWS, n - b * BLOCK_ROWS)
        done = 0
        while done < rows:
            take = min(rows - done, batch_rows - pending_rows)
            pending.append(block.slice(done, take))
            pending_rows += take
            done += take
            if pending_rows == batch_rows:
                yield _concat(pending)
                pending, pending_rows = [], 0
    if pending:
        yield _concat(pending)


def _concat(batches: list[pa.RecordBatch]) -> pa.RecordBatch:
    if len(batches) == 1:
        return batches[0]
    return pa.Table.from_batches(batches).combine_chunks().to_batches()[0]


def write_reviews(path: str | Path, n: int, **options) -> int:
    """Write ``n`` synthetic reviews to ``path`` (``.parquet``, ``.csv`` or ``.jsonl``).

    ``options`` are those of :func:`generate_reviews`. Rows stream through batch by batch and
    land in a partial file that replaces ``path`` only when complete (see
    :class:`~wordofclick.reviews.TableWriter`, which also writes CSV cells that start like a
    spreadsheet formula, ``@handle ...`` tweets for one, with a leading quote). Returns the number
    of rows written.
    """
    from wordofclick.reviews import TableWriter

    batches = generate_reviews(n, **options)
    with TableWriter(path, REVIEW_SCHEMA) as writer:
        for batch in batches:
            writer.write(pa.Table.from_batches([batch]))
    return writer.rows
