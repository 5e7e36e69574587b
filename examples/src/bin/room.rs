//! A game room: players follow a room served by a game node on a server-streamed
//! feed of room events, while posting their moves as one-way pb messages whose id
//! comes from `option (clustergo.cmd)` in `proto/room.proto`.
//!
//! In one process: the game node `1.1.1` serves `game.room.Feed` (all three
//! streaming kinds); a gate node `1.2.1` acts for the players `ann` and `bob`.
//! Dropping a feed leaves the room: the server's handler is dropped and the others
//! see the player leave. Exits 0 only if every step worked, within 10 s.

mod support;

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clustergo::{LogicAddr, RpcContext, RpcError, StreamSender, Streaming};
use service::game::room::feed::{FeedClient, FeedService};
use service::game::room::{self as pb, Enter, Event, Line, Move, Summary, event::What};
use tokio::sync::broadcast;

/// The rooms of the game node: one broadcast channel of events per room.
#[derive(Clone, Default)]
struct Rooms {
    feeds: Arc<Mutex<HashMap<u32, broadcast::Sender<Event>>>>,
    seq: Arc<Mutex<u64>>,
}

impl Rooms {
    fn feed(&self, room: u32) -> broadcast::Sender<Event> {
        let mut feeds = self.feeds.lock().expect("rooms lock");
        feeds
            .entry(room)
            .or_insert_with(|| broadcast::channel(256).0)
            .clone()
    }

    /// Tells everyone in `room` what `player` did.
    fn publish(&self, room: u32, player: &str, what: What) {
        let seq = {
            let mut seq = self.seq.lock().expect("seq lock");
            *seq += 1;
            *seq
        };
        let _ = self.feed(room).send(Event {
            seq,
            player: player.to_owned(),
            what: Some(what),
        });
    }
}

/// Publishes `left` when a follower's handler ends — also when it is dropped
/// because the player dropped its feed.
struct Leave {
    rooms: Rooms,
    room: u32,
    player: String,
}

impl Drop for Leave {
    fn drop(&mut self) {
        self.rooms
            .publish(self.room, &self.player, What::Left(true));
    }
}

impl FeedService for Rooms {
    async fn follow(
        &self,
        _: RpcContext,
        enter: Enter,
        mut events: StreamSender<Event>,
    ) -> Result<(), RpcError> {
        let mut feed = self.feed(enter.room).subscribe();
        self.publish(enter.room, &enter.player, What::Joined(true));
        let _leave = Leave {
            rooms: self.clone(),
            room: enter.room,
            player: enter.player,
        };
        loop {
            match feed.recv().await {
                // Waits while the player does not read: the feed's flow control.
                Ok(e) => events.send(e).await?,
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    return Err(RpcError::Method(format!("fell {n} events behind")));
                }
                Err(broadcast::error::RecvError::Closed) => return Ok(()),
            }
        }
    }

    async fn replay(&self, _: RpcContext, mut moves: Streaming<Move>) -> Result<Summary, RpcError> {
        let mut n = 0;
        while let Some(m) = moves.message().await? {
            let (room, player) = (m.room, m.player.clone());
            self.publish(room, &player, What::Moved(m));
            n += 1;
        }
        Ok(Summary { moves: n })
    }

    async fn talk(
        &self,
        _: RpcContext,
        mut lines: Streaming<Line>,
        mut back: StreamSender<Line>,
    ) -> Result<(), RpcError> {
        while let Some(line) = lines.message().await? {
            back.send(Line {
                player: format!("room:{}", line.player),
                text: line.text,
            })
            .await?;
        }
        Ok(())
    }
}

/// How an event reads.
fn describe(e: &Event) -> String {
    match &e.what {
        Some(What::Joined(_)) => format!("{} joined", e.player),
        Some(What::Left(_)) => format!("{} left", e.player),
        Some(What::Moved(m)) => format!("{} moved to ({}, {})", e.player, m.x, m.y),
        None => format!("{}: ?", e.player),
    }
}

/// The next event of `feed`, described; `"<end>"` or the error if there is none.
async fn next(who: &str, feed: &mut Streaming<Event>) -> String {
    let text = match tokio::time::timeout(Duration::from_secs(5), feed.message()).await {
        Ok(Ok(Some(e))) => describe(&e),
        Ok(Ok(None)) => "<end>".to_owned(),
        Ok(Err(e)) => format!("<{e}>"),
        Err(_) => "<nothing within 5 s>".to_owned(),
    };
    println!("  {who} sees: {text}");
    text
}

fn move_to(player: &str, x: i32, y: i32) -> Move {
    Move {
        player: player.to_owned(),
        room: 1,
        x,
        y,
    }
}

async fn play(gate: &clustergo::Node, game: LogicAddr) -> bool {
    let feed = FeedClient::new(gate);
    let mut ok = true;
    let enter = |player: &str| Enter {
        player: player.to_owned(),
        room: 1,
    };
    let Ok(mut ann) = feed.follow(game, enter("ann")).await else {
        return support::check("ann follows room 1", false);
    };
    ok &= support::check("ann joins", next("ann", &mut ann).await == "ann joined");
    let Ok(mut bob) = feed.follow(game, enter("bob")).await else {
        return support::check("bob follows room 1", false);
    };
    ok &= support::check("ann sees bob", next("ann", &mut ann).await == "bob joined");
    ok &= support::check("bob joins", next("bob", &mut bob).await == "bob joined");

    // Moves are one-way pb messages; their id (`pb::MOVE_CMD`) comes from the .proto.
    let sent = gate.send_pb(game, &move_to("ann", 1, 2));
    ok &= support::check("ann posts a move", sent.is_ok());
    ok &= support::check(
        "both see the move",
        next("ann", &mut ann).await == "ann moved to (1, 2)"
            && next("bob", &mut bob).await == "ann moved to (1, 2)",
    );

    // Dropping the feed cancels the call: the server drops bob's handler.
    drop(bob);
    ok &= support::check("bob leaves", next("ann", &mut ann).await == "bob left");

    // Client-streaming: recorded moves, one summary.
    if let Ok((mut tx, summary)) = feed.replay(game).await {
        for x in 0..3 {
            ok &= tx.send(move_to("bob", x, 0)).await.is_ok();
        }
        drop(tx);
        let n = summary.await.map(|s| s.moves);
        ok &= support::check("replay of 3 moves", n == Ok(3));
        for x in 0..3 {
            let want = format!("bob moved to ({x}, 0)");
            ok &= support::check("ann sees the replay", next("ann", &mut ann).await == want);
        }
    } else {
        ok &= support::check("replay opens", false);
    }

    // Bidirectional: lines go and come back.
    if let Ok((mut tx, mut rx)) = feed.talk(game).await {
        let sent = tx
            .send(Line {
                player: "ann".into(),
                text: "gg".into(),
            })
            .await;
        let back = rx.message().await;
        ok &= support::check(
            "talk: the line comes back from the room",
            sent.is_ok()
                && back.is_ok_and(|l| l.is_some_and(|l| l.player == "room:ann" && l.text == "gg")),
        );
    } else {
        ok &= support::check("talk opens", false);
    }
    ok
}

async fn run() -> bool {
    let (game_node, game, gate, _) = support::pair().await;
    let rooms = Rooms::default();
    let posted = rooms.clone();
    game_node.register_pb_handler(pb::MOVE_CMD, move |_from, m: Move| {
        let (room, player) = (m.room, m.player.clone());
        posted.publish(room, &player, What::Moved(m));
    });
    pb::feed::register_on(&game_node, rooms);
    pb::register_messages(&gate);
    let ok = play(&gate, game).await;
    gate.shutdown().await;
    game_node.shutdown().await;
    ok
}

#[tokio::main]
async fn main() -> ExitCode {
    support::exit_code("room", run()).await
}
