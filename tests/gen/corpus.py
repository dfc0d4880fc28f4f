"""Training text for the fixtures' SentencePiece tokenizer.

Fixed text written into the repository (nothing read from the machine), so the trained
tokenizer is the same everywhere. A mix of English prose, chat turns, code and numbers,
with a few rare non-ASCII characters that fall back to byte tokens.
"""

PROSE = """\
The quick brown fox jumps over the lazy dog. A small model can still learn a great deal
from a few pages of text, as long as the text is varied enough to cover common words,
punctuation and numbers. This corpus is written by hand for a test fixture; it is not meant
to be read by anyone, but it should look a little like the data a real tokenizer sees.

Once upon a time there was a little robot who wanted to learn how to write poems. Every
morning it read the newspaper, and every evening it wrote a short verse about what it had
learned. Some verses were about the weather, some about the stock market, and some about
the cat that lived next door. The robot was never sure whether its poems were any good,
but it kept writing them anyway, because writing made it happy.

Rivers flow down from the mountains to the sea. Along the way they carve valleys, carry
sand and stones, and give water to forests, farms and cities. People have always built
their towns near rivers: the water was used for drinking, for washing, for growing food and
for moving goods from one place to another on boats and barges.

Machine learning models are trained on large collections of examples. During training the
parameters of the model are adjusted, step by step, so that its predictions become closer
to the targets. A language model predicts the next token of a text; a token is a word, a
piece of a word, or a single byte. Fine-tuning adapts a trained model to a new task with a
smaller set of examples, and low-rank adaptation (LoRA) does this by learning two thin
matrices whose product is added to a frozen weight.

Quantization stores the weights with fewer bits. A 4-bit format keeps one scale for every
block of 64 numbers and a table of sixteen levels; the block scale can itself be quantized
to save a little more memory. The k-quant formats used by llama.cpp group 256 weights into
a super-block with 6-bit or 8-bit sub-block scales.

Weather report: cloudy in the morning, with sunny spells in the afternoon. Temperatures
between 12 and 18 degrees. Light winds from the west, becoming moderate in the evening.
Tomorrow: rain at first, clearing later; highs of 16 degrees.

Recipe for pancakes. Mix 200 g of flour, 2 eggs, 300 ml of milk and a pinch of salt. Whisk
until smooth and let the batter rest for ten minutes. Heat a little butter in a pan, pour a
ladle of batter, cook for one minute on each side, and serve with lemon and sugar.

Dear Sam, thank you for your letter. I was very glad to hear that you have found a new job
and that you like your colleagues. Here everything is fine: the garden is full of flowers,
the children are busy with school, and the dog still barks at every bicycle. Write soon!

Numbers: 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 32 64 100 128 256 512 1000
1024 2048 4096 65536 3.14159 2.71828 -1.5 0.001 1e-5 42% $19.99 12:30 2024-06-01 #7 @home
Punctuation: "quoted", 'single', (round), [square], {curly}, <angle>, a/b, a\\b, a|b, a;b,
a:b, a-b, a_b, a+b=c, a*b, a^b, a~b, a&b, wait... really?! yes; no: maybe.
Accents and symbols: café, naïve, résumé, façade, Ångström, Zürich, smörgåsbord, 東京, 你好, Привет, 🙂.
"""

CHAT = """\
<|im_start|>system
You are a helpful assistant.<|im_end|>
<|im_start|>user
What is the capital of France?<|im_end|>
<|im_start|>assistant
The capital of France is Paris.<|im_end|>
<|im_start|>user
Write a haiku about the sea.<|im_end|>
<|im_start|>assistant
Grey waves fold and break,
salt wind carries the gulls' cry,
the tide keeps its time.<|im_end|>
<|im_start|>user
How many legs does a spider have?<|im_end|>
<|im_start|>assistant
A spider has eight legs.<|im_end|>
<|im_start|>user
Can you explain what a tokenizer does?<|im_end|>
<|im_start|>assistant
A tokenizer splits text into tokens and maps each token to an id, so that a model can read it.<|im_end|>
"""

CODE = '''\
def fibonacci(n: int) -> list[int]:
    """Return the first n Fibonacci numbers."""
    out = [0, 1]
    while len(out) < n:
        out.append(out[-1] + out[-2])
    return out[:n]


class Counter:
    def __init__(self):
        self.counts = {}

    def add(self, word):
        self.counts[word] = self.counts.get(word, 0) + 1

    def most_common(self, k=10):
        return sorted(self.counts.items(), key=lambda kv: -kv[1])[:k]


for i in range(10):
    if i % 2 == 0:
        print(f"{i} is even")
    else:
        print(f"{i} is odd")

fn main() {
    let v: Vec<u32> = (1..=10).map(|x| x * x).collect();
    println!("sum = {}", v.iter().sum::<u32>());
    for (i, x) in v.iter().enumerate() {
        if *x > 20 { break; }
        println!("{i}: {x}");
    }
}

#include <stdio.h>
int main(void) {
    for (int i = 0; i < 3; ++i) printf("hello %d\\n", i);
    return 0;
}

SELECT name, COUNT(*) AS n FROM users WHERE age >= 18 GROUP BY name ORDER BY n DESC;
{"model": "tiny-llama", "layers": 2, "hidden_size": 256, "tokens": [1, 2, 3]}
'''


def training_text() -> str:
    """The whole corpus, repeated so that frequent pieces are well counted."""
    return "\n".join([PROSE, CHAT, CODE] * 3)
