"""Six short English essays written for the course, a tiny offline corpus for text demos.

Used by the paper notebook ``lectures/papers/pegasus_gap_sentences`` (gap-sentence selection). Each essay is one
string of 9 to 12 sentences; split it with :func:`cvcourse.text.split_sentences`.
"""

ESSAYS: dict[str, str] = {
    "bread": (
        "On a cold morning the kitchen smells of yeast long before anyone is awake. "
        "Bread is made from four things: flour, water, salt and yeast. "
        "The yeast eats the sugars in the flour and breathes out gas, and the gas is what makes bread rise. "
        "Kneading stretches the gluten in the flour into long elastic strands. "
        "Those strands trap the gas, so well-kneaded dough rises high and holds its shape. "
        "Salt slows the yeast down and tightens the gluten, which is why bread without salt tastes flat and spreads. "
        "A slow rise in a cool room gives the yeast time to make flavour as well as gas. "
        "In the oven the gas expands, the yeast dies and the crust browns. "
        "My grandmother baked on Fridays and never weighed anything. "
        "Good bread, in the end, is flour, water, salt, yeast and patience."
    ),
    "lighthouse": (
        "The lighthouse stands at the end of a narrow spit of rock. "
        "For two hundred years its light has warned ships away from the reef below. "
        "The first keepers burned whale oil and trimmed the wicks every few hours through the night. "
        "Later the oil lamps gave way to paraffin, and the paraffin to electric bulbs. "
        "A great glass lens, taller than a man, bends the light of the lamp into a single bright beam. "
        "The lens turns, so ships far out at sea see the light flash in a pattern that names the lighthouse. "
        "Today the light is automatic and no keeper lives on the rock. "
        "Visitors climb the spiral stairs in summer and look out over the reef. "
        "Gulls nest on the ledges below the gallery. "
        "The lighthouse still warns ships, but its keepers are gone and its light needs no one."
    ),
    "bees": (
        "A honeybee colony can hold fifty thousand bees in a single hive. "
        "Almost all of them are female worker bees, and each colony has one queen. "
        "The queen lays the eggs, sometimes more than a thousand in a day. "
        "Young workers clean the hive and feed the larvae. "
        "Older workers fly out to gather nectar and pollen from flowers. "
        "A worker who finds good flowers returns to the hive and dances to tell the other bees where they are. "
        "The angle of the dance points to the flowers and its length says how far they are. "
        "Back in the hive the bees turn nectar into honey by evaporating its water. "
        "Some farmers rent hives so that the bees will pollinate their orchards. "
        "In a single hive, then, the bees divide the work of the colony between the queen and the workers."
    ),
    "maps": (
        "Every flat map of the Earth is wrong in some way. "
        "The Earth is close to a sphere, and a sphere cannot be flattened without stretching or tearing it. "
        "A map projection is a rule that sends each point of the sphere to a point of the flat map. "
        "The Mercator projection keeps angles correct, which made it the map of sailors. "
        "But Mercator stretches the land near the poles, so Greenland looks as large as Africa. "
        "Equal-area projections keep the size of the land correct but bend its shape. "
        "No projection can keep both angles and areas correct at once. "
        "Mapmakers choose the projection that suits the map's purpose. "
        "A school atlas may use a compromise that is a little wrong everywhere and badly wrong nowhere. "
        "When you read a flat map, ask which projection it uses and what that projection stretches."
    ),
    "rivers": (
        "A river begins as rain falling on high ground. "
        "The rain gathers into small streams, and the streams join to make the river. "
        "Near its source the river is fast and steep and cuts a narrow valley into the rock. "
        "Stones carried by the water grind the river bed deeper every year. "
        "Lower down the land is flatter, so the river slows and bends from side to side. "
        "A slow river drops the mud and sand it carried from the hills. "
        "That mud builds wide flat plains, and the plains are some of the best farmland in the world. "
        "Towns grew along rivers because rivers gave water, food and a road for boats. "
        "At last the river reaches the sea and spreads its mud into a delta. "
        "From the rain on the hills to the delta at the sea, the river shapes the land it crosses."
    ),
    "clocks": (
        "For most of history people told the time by the sun. "
        "A sundial shows the hour by the shadow of a stick, but only when the sun is shining. "
        "Water clocks measured time by the steady flow of water from one bowl into another. "
        "Mechanical clocks appeared in the towers of European towns about seven hundred years ago. "
        "Those early clocks drifted by many minutes a day. "
        "The pendulum made clocks far more accurate, because a pendulum swings with a steady period. "
        "Railways needed every town to keep the same time, so clocks across a country were set together. "
        "Quartz crystals now keep time in cheap watches, and atomic clocks keep time for the world. "
        "An atomic clock would drift by less than a second in millions of years. "
        "The history of clocks is the history of ever more accurate ways to measure time."
    ),
}
