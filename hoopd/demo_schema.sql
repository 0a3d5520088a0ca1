-- Sample schema for `hoopd demo`: a small shop whose customers table holds
-- personal data (names, e-mail addresses, phone numbers, card numbers), so the
-- recording and, later, masking features have something realistic to act on.
CREATE TABLE customers (
    id          serial PRIMARY KEY,
    full_name   text NOT NULL,
    email       text NOT NULL UNIQUE,
    phone       text,
    card_number text,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE products (
    id    serial PRIMARY KEY,
    name  text NOT NULL,
    price numeric(10, 2) NOT NULL
);

CREATE TABLE orders (
    id          serial PRIMARY KEY,
    customer_id integer NOT NULL REFERENCES customers (id),
    product_id  integer NOT NULL REFERENCES products (id),
    quantity    integer NOT NULL CHECK (quantity > 0),
    ordered_at  timestamptz NOT NULL DEFAULT now()
);

INSERT INTO customers (full_name, email, phone, card_number) VALUES
    ('Ada Lovelace',    'ada@example.com',    '+44 20 7946 0018', '4111 1111 1111 1111'),
    ('Grace Hopper',    'grace@example.com',  '+1 202 555 0143',  '5500 0000 0000 0004'),
    ('Alan Turing',     'alan@example.com',   '+44 161 496 0752', '3400 0000 0000 009'),
    ('Katherine Johnson','katherine@example.com','+1 757 555 0199','6011 0000 0000 0004');

INSERT INTO products (name, price) VALUES
    ('Analytical engine', 1843.00),
    ('Compiler',           1952.00),
    ('Bombe',              1940.00);

INSERT INTO orders (customer_id, product_id, quantity) VALUES
    (1, 1, 1), (2, 2, 3), (3, 3, 1), (4, 2, 2);
