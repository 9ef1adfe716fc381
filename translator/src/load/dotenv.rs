//! `.env` files (compose-go `dotenv/`). Being written.
